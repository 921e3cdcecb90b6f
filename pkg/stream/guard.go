package stream

import (
	"fmt"
	"runtime/debug"
	"time"
)

// userContext is the ProcessorContext handed to a user Processor (every
// DSL operation is one too). Over the task's procContext it rejects
// Forward in Init, where no record is being processed, and turns a panic in
// a punctuation into an error naming the node.
type userContext[K, V any] struct {
	*procContext[K, V]
	inInit  bool
	initErr error
}

func (c *userContext[K, V]) Forward(rec Record[K, V]) {
	if c.inInit {
		c.forwardInInit("Forward")
		return
	}
	c.procContext.Forward(rec)
}

func (c *userContext[K, V]) ForwardTo(child string, rec Record[K, V]) {
	if c.inInit {
		c.forwardInInit("ForwardTo")
		return
	}
	c.procContext.ForwardTo(child, rec)
}

func (c *userContext[K, V]) forwardInInit(method string) {
	if c.initErr == nil {
		c.initErr = fmt.Errorf("stream: node %s: %s called in Init, where there is no record to forward; forward from Process or from a punctuation scheduled in Init", c.node.name, method)
	}
}

func (c *userContext[K, V]) Schedule(interval time.Duration, typ PunctuationType, fn Punctuator) Cancellable {
	log := c.logger
	return c.procContext.Schedule(interval, typ, func(ts time.Time) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = panicError(r)
				log.Error("punctuation panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		return fn(ts)
	})
}

// initProcessor runs p.Init with ctx, turning a panic and a Forward into
// errors that name the node.
func initProcessor[KIn, VIn, K, V any](name string, p Processor[KIn, VIn, K, V], ctx *userContext[K, V]) (err error) {
	ctx.inInit = true
	defer func() {
		ctx.inInit = false
		if r := recover(); r != nil {
			err = fmt.Errorf("stream: node %s: Init: %w", name, panicError(r))
			ctx.logger.Error("Init panicked", "panic", r, "stack", string(debug.Stack()))
		}
		if err == nil {
			err = ctx.initErr
		}
	}()
	return p.Init(ctx)
}

// recoverRecord is deferred by every node's input function: a panic in user
// code (a processor, a DSL function, a serde, a timestamp extractor) fails
// the task with a ProcessError naming the node and the input record's
// position, instead of crashing the process.
func recoverRecord(t *task, node string) {
	if r := recover(); r != nil {
		md := t.cur.meta
		if !t.cur.inRecord {
			md = RecordMetadata{Topic: "punctuation", Partition: t.id.Partition, Offset: -1}
		}
		t.logger.Error("processor panicked", "node", node, "topic", md.Topic, "partition", md.Partition, "offset", md.Offset, "panic", r, "stack", string(debug.Stack()))
		t.fail(&ProcessError{Node: node, Topic: md.Topic, Partition: md.Partition, Offset: md.Offset, Err: panicError(r)})
	}
}

// safeClose calls a processor's Close; a panic becomes its error.
func safeClose(name string, closeFn func() error) func() error {
	return func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("stream: node %s: Close: %w", name, panicError(r))
			}
		}()
		return closeFn()
	}
}

func panicError(r any) error {
	if err, ok := r.(error); ok {
		return fmt.Errorf("panic: %w", err)
	}
	return fmt.Errorf("panic: %v", r)
}
