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

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Reference harness: runs Kafka Streams' windowed count under
 * TopologyTestDriver for the cases read from stdin and prints the results.
 *
 * <pre>
 * case NAME
 * config kind=tumbling|hopping|session|sliding size=MS advance=MS gap=MS diff=MS retention=MS grace=MS emit=update|final [suppress=true]
 * pipe KEY TS     a record with String key KEY, timestamp TS ms (one partition)
 * mark            prints "--"
 * end             closes the case, prints "end"
 * </pre>
 *
 * "case" prints "case NAME". Each result record is printed as
 * "KEY START END COUNT" (window start and end in ms), tombstones as
 * "KEY START END null". Without any "case" line the input is one case.
 * Errors go to stderr and make the exit status non-zero.
 *
 * <p>emit=final uses suppress(untilWindowCloses), except for sliding windows
 * (windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(diff, grace))), which
 * use emitStrategy(onWindowClose), checked after every record: suppression
 * takes a sliding window's inclusive end for an exclusive one and emits it
 * while it can still change (suppress=true selects it anyway). Sliding
 * windows need retention=MS, the window store's retention: with the default
 * (2 * diff + grace) a fetch hides windows older than the newest stored
 * window start minus the retention, and emitStrategy(onWindowClose) then
 * never emits the windows a jump of stream time leaves behind.
 */
public final class Main {
    private static final String IN = "in";

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
                        current.pipe(f[1], Long.parseLong(f[2]));
                        break;
                    case "mark":
                        out.write("--");
                        out.newLine();
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

    /** One topology and its driver; results are printed as each record is piped. */
    private static final class Case {
        private final TopologyTestDriver driver;
        private final TestInputTopic<String, String> input;
        private final BufferedWriter out;

        Case(final Map<String, String> kv, final Path stateDir, final BufferedWriter out) {
            this.out = out;
            final String kind = kv.getOrDefault("kind", "tumbling");
            final boolean fin;
            switch (kv.getOrDefault("emit", "update")) {
                case "update":
                    fin = false;
                    break;
                case "final":
                    fin = true;
                    break;
                default:
                    throw new IllegalArgumentException("config: emit must be update or final");
            }
            final Duration grace = Duration.ofMillis(ms(kv, "grace"));

            final StreamsBuilder b = new StreamsBuilder();
            final KStream<String, String> src = b.stream(IN, Consumed.with(Serdes.String(), Serdes.String()));
            final KGroupedStream<String, String> grouped = src.groupByKey(Grouped.with(Serdes.String(), Serdes.String()));
            final KStream<Windowed<String>, Long> results;
            switch (kind) {
                case "tumbling":
                case "hopping": {
                    final long size = ms(kv, "size");
                    final long advance = kind.equals("tumbling") ? kv.containsKey("advance") ? ms(kv, "advance") : size : ms(kv, "advance");
                    KTable<Windowed<String>, Long> counts = grouped
                            .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(size), grace).advanceBy(Duration.ofMillis(advance)))
                            .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                                    .withCachingDisabled());
                    if (fin) {
                        counts = counts.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
                    }
                    results = counts.toStream();
                    break;
                }
                case "session": {
                    KTable<Windowed<String>, Long> counts = grouped
                            .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(ms(kv, "gap")), grace))
                            .count(Materialized.<String, Long, SessionStore<Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                                    .withCachingDisabled());
                    if (fin) {
                        counts = counts.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
                    }
                    results = counts.toStream();
                    break;
                }
                case "sliding": {
                    KTable<Windowed<String>, Long> counts = grouped
                            .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(ms(kv, "diff")), grace))
                            .emitStrategy(fin && !kv.containsKey("suppress") ? EmitStrategy.onWindowClose() : EmitStrategy.onWindowUpdate())
                            .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>with(Serdes.String(), Serdes.Long())
                                    .withRetention(Duration.ofMillis(ms(kv, "retention")))
                                    .withCachingDisabled());
                    if (fin && kv.containsKey("suppress")) {
                        counts = counts.suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
                    }
                    results = counts.toStream();
                    break;
                }
                default:
                    throw new IllegalArgumentException("config: unknown kind " + kind);
            }
            results.foreach((k, v) -> print(k, v));

            final Properties props = new Properties();
            props.put(StreamsConfig.APPLICATION_ID_CONFIG, "kstreams-ref");
            props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
            props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
            props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
            props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
            props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
            // Emit-final of sliding windows (emitStrategy(onWindowClose)) checks
            // for closed windows after every record, not once per wall-clock second.
            props.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_WINDOWED_AGGREGATION, 0L);
            // The wall clock starts at 0 and is never advanced: only stream
            // time moves windows forward.
            driver = new TopologyTestDriver(b.build(), props, Instant.ofEpochMilli(0));
            input = driver.createInputTopic(IN, new StringSerializer(), new StringSerializer());
        }

        void pipe(final String key, final long ts) {
            input.pipeInput(key, "v", ts);
        }

        private void print(final Windowed<String> k, final Long v) {
            try {
                out.write(k.key() + " " + k.window().start() + " " + k.window().end() + " " + (v == null ? "null" : v.toString()));
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
