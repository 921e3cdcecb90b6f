package stream

// SetRestoreRun makes restores into ingesting stores (Pebble) hand over
// runs of at most n records and ingest runs of at least minRun, and returns
// a function that restores the defaults.
func SetRestoreRun(n, minRun int) (reset func()) {
	was, wasMin := restoreRun, restoreRunMin
	restoreRun, restoreRunMin = n, minRun
	return func() { restoreRun, restoreRunMin = was, wasMin }
}
