package kstreamsref;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;

import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Aggregator;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Initializer;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Merger;
import org.apache.kafka.streams.kstream.SessionWindowedKStream;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindowedKStream;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Reference harness: runs a windowed aggregation of the real Kafka Streams
 * under TopologyTestDriver for the cases read from stdin and prints the
 * results. Used by TestMatchesKafkaStreams (pkg/window/kstreams_ref_test.go).
 *
 * <pre>
 * case NAME
 * config kind=tumbling|hopping|session|sliding size=MS advance=MS gap=MS diff=MS grace=MS [retention=MS] emit=update|close|suppress
 * pipe KEY TS     a record with String key KEY, value "v", timestamp TS ms (one partition; TS may be negative)
 * mark            prints "-- dropped=D aggs=N"
 * end             closes the case, prints "end"
 * </pre>
 *
 * "case" prints "case NAME". Each result record is printed as
 * "KEY START END VALUE TS": window start and end in ms, VALUE the aggregate
 * ("null" for a tombstone), TS the result record's timestamp in ms. Without
 * any "case" line the input is one case. Errors go to stderr and make the exit
 * status non-zero.
 *
 * <p>The aggregation is {@code aggregate(() -> 0L, (k, v, agg) -> agg + 1
 * [, (k, a, b) -> a + b])} with caching disabled: a count whose aggregator
 * calls are counted. D in a mark line is the change since the previous mark of
 * the task-level metric dropped-records-total (group stream-task-metrics,
 * summed over tasks), N the number of aggregator calls since the previous
 * mark.
 *
 * <p>emit=update is emitStrategy(onWindowUpdate()); emit=close is
 * emitStrategy(onWindowClose()), checked after every record (the internal emit
 * interval is 0); emit=suppress is onWindowUpdate followed by
 * suppress(untilWindowCloses(unbounded())). retention=MS, when given, is the
 * store's retention (Materialized.withRetention); without it the store
 * default. With the default retention (size + grace for time windows,
 * 2 * diff + grace for sliding windows) a fetch after a jump of stream time
 * hides windows that emitStrategy(onWindowClose) has not emitted yet, and it
 * then never emits them.
 *
 * <p>The timestamp extractor returns the record's timestamp as is, so a
 * negative timestamp is dropped (and counted in dropped-records-total) by the
 * task's record queue, as it is with an extractor that reads event time from
 * the payload. The wall clock stays at 0: only stream time moves windows.
 */
public final class Main {
    private static final String IN = "in";

    /** Aggregator calls since the last mark (the driver runs on this thread). */
    static long aggCalls;

    private Main() {}

    public static void main(final String[] args) throws IOException {
        final BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        final BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);
        final Path stateRoot = Files.createTempDirectory("kstreams-ref-");
        Case current = null;
        int caseNo = 0;
        String line;
        int lineNo = 0;
        try {
            while ((line = in.readLine()) != null) {
                lineNo++;
                line = line.strip();
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                final String[] f = line.split("\\s+");
                switch (f[0]) {
                    case "case":
                        if (current != null) {
                            current.close();
                            current = null;
                        }
                        out.write("case " + (f.length > 1 ? f[1] : ""));
                        out.newLine();
                        break;
                    case "config":
                        if (current != null) {
                            current.close();
                        }
                        current = new Case(parseConfig(f), stateRoot.resolve("c" + caseNo++), out);
                        break;
                    case "pipe":
                        require(current != null, lineNo, "pipe before config");
                        require(f.length == 3, lineNo, "pipe KEY TS");
                        current.pipe(f[1], Long.parseLong(f[2]));
                        break;
                    case "mark":
                        require(current != null, lineNo, "mark before config");
                        current.mark();
                        break;
                    case "end":
                        if (current != null) {
                            current.close();
                            current = null;
                        }
                        out.write("end");
                        out.newLine();
                        out.flush();
                        break;
                    default:
                        throw new IllegalArgumentException("line " + lineNo + ": unknown command " + f[0]);
                }
            }
        } finally {
            if (current != null) {
                current.close();
            }
            out.flush();
            deleteTree(stateRoot);
        }
    }

    private static void deleteTree(final Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            for (final Path p : (Iterable<Path>) paths.sorted(Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        }
    }

    private static void require(final boolean ok, final int lineNo, final String msg) {
        if (!ok) {
            throw new IllegalArgumentException("line " + lineNo + ": " + msg);
        }
    }

    private static Map<String, String> parseConfig(final String[] f) {
        final Map<String, String> kv = new HashMap<>();
        for (int i = 1; i < f.length; i++) {
            final int eq = f[i].indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("config: bad field " + f[i]);
            }
            kv.put(f[i].substring(0, eq), f[i].substring(eq + 1));
        }
        return kv;
    }

    private static long ms(final Map<String, String> kv, final String k) {
        final String v = kv.get(k);
        if (v == null) {
            throw new IllegalArgumentException("config: missing " + k);
        }
        return Long.parseLong(v);
    }

    private static <S extends org.apache.kafka.streams.processor.StateStore> Materialized<String, Long, S> store(
            final Map<String, String> kv) {
        Materialized<String, Long, S> m = Materialized.<String, Long, S>with(Serdes.String(), Serdes.Long()).withCachingDisabled();
        if (kv.containsKey("retention")) {
            m = m.withRetention(Duration.ofMillis(ms(kv, "retention")));
        }
        return m;
    }

    /** One topology and its driver; results are printed as each record is piped. */
    private static final class Case {
        private final TopologyTestDriver driver;
        private final TestInputTopic<String, String> input;
        private final BufferedWriter out;
        private double droppedAtMark;

        Case(final Map<String, String> kv, final Path stateDir, final BufferedWriter out) {
            this.out = out;
            aggCalls = 0;
            final String kind = kv.getOrDefault("kind", "tumbling");
            final String emit = kv.getOrDefault("emit", "update");
            final boolean onClose;
            final boolean suppress;
            switch (emit) {
                case "update":
                    onClose = false;
                    suppress = false;
                    break;
                case "close":
                    onClose = true;
                    suppress = false;
                    break;
                case "suppress":
                    onClose = false;
                    suppress = true;
                    break;
                default:
                    throw new IllegalArgumentException("config: emit must be update, close or suppress");
            }
            final EmitStrategy strategy = onClose ? EmitStrategy.onWindowClose() : EmitStrategy.onWindowUpdate();
            final Duration grace = Duration.ofMillis(ms(kv, "grace"));
            final Initializer<Long> init = () -> 0L;
            final Aggregator<String, String, Long> agg = (k, v, a) -> {
                aggCalls++;
                return a + 1;
            };
            final Merger<String, Long> merger = (k, a, b) -> a + b;

            final StreamsBuilder b = new StreamsBuilder();
            // Event time as is: a negative timestamp is dropped and counted by
            // the record queue (the default extractor would fail the task).
            final KStream<String, String> src = b.stream(IN, Consumed.with(Serdes.String(), Serdes.String())
                    .withTimestampExtractor((record, partitionTime) -> record.timestamp()));
            final KGroupedStream<String, String> grouped = src.groupByKey(Grouped.with(Serdes.String(), Serdes.String()));
            KTable<Windowed<String>, Long> table;
            switch (kind) {
                case "tumbling":
                case "hopping": {
                    final long size = ms(kv, "size");
                    final long advance = kind.equals("tumbling") && !kv.containsKey("advance") ? size : ms(kv, "advance");
                    final TimeWindowedKStream<String, String> w = grouped
                            .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(size), grace).advanceBy(Duration.ofMillis(advance)))
                            .emitStrategy(strategy);
                    table = w.aggregate(init, agg, Main.<WindowStore<Bytes, byte[]>>store(kv));
                    break;
                }
                case "session": {
                    final SessionWindowedKStream<String, String> w = grouped
                            .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(ms(kv, "gap")), grace))
                            .emitStrategy(strategy);
                    table = w.aggregate(init, agg, merger, Main.<SessionStore<Bytes, byte[]>>store(kv));
                    break;
                }
                case "sliding": {
                    final TimeWindowedKStream<String, String> w = grouped
                            .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(ms(kv, "diff")), grace))
                            .emitStrategy(strategy);
                    table = w.aggregate(init, agg, Main.<WindowStore<Bytes, byte[]>>store(kv));
                    break;
                }
                default:
                    throw new IllegalArgumentException("config: unknown kind " + kind);
            }
            if (suppress) {
                table = table.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
            }
            table.toStream().process(() -> new Processor<Windowed<String>, Long, Void, Void>() {
                @Override
                public void process(final Record<Windowed<String>, Long> r) {
                    print(r.key(), r.value(), r.timestamp());
                }
            });

            final Properties props = new Properties();
            props.put(StreamsConfig.APPLICATION_ID_CONFIG, "kstreams-ref");
            props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
            props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
            props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
            props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
            props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
            // emitStrategy(onWindowClose) checks for closed windows after
            // every record, not once per wall-clock second.
            props.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION, 0L);
            // The wall clock starts at 0 and is never advanced: only stream
            // time moves windows forward.
            driver = new TopologyTestDriver(b.build(), props, Instant.ofEpochMilli(0));
            input = driver.createInputTopic(IN, new StringSerializer(), new StringSerializer());
        }

        void pipe(final String key, final long ts) {
            // The Instant overload: the long one rejects negative timestamps.
            input.pipeInput(key, "v", Instant.ofEpochMilli(ts));
        }

        /** The task-level dropped-records-total, summed over tasks. */
        private double dropped() {
            double sum = 0;
            for (final Map.Entry<MetricName, ? extends Metric> e : driver.metrics().entrySet()) {
                final MetricName n = e.getKey();
                if (n.name().equals("dropped-records-total") && n.group().equals("stream-task-metrics")) {
                    sum += ((Number) e.getValue().metricValue()).doubleValue();
                }
            }
            return sum;
        }

        void mark() {
            final double d = dropped();
            final long delta = Math.round(d - droppedAtMark);
            droppedAtMark = d;
            try {
                out.write("-- dropped=" + delta + " aggs=" + aggCalls);
                out.newLine();
            } catch (final IOException e) {
                throw new RuntimeException(e);
            }
            aggCalls = 0;
        }

        private void print(final Windowed<String> k, final Long v, final long ts) {
            try {
                out.write(k.key() + " " + k.window().start() + " " + k.window().end() + " " + (v == null ? "null" : v.toString()) + " " + ts);
                out.newLine();
            } catch (final IOException e) {
                throw new RuntimeException(e);
            }
        }

        void close() {
            driver.close();
        }
    }
}
