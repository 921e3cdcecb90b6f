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
import java.util.function.BiFunction;
import java.util.stream.Stream;

import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.LongSerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KGroupedTable;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.KeyValueMapper;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.ValueJoiner;
import org.apache.kafka.streams.state.BuiltInDslStoreSuppliers;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.VersionedBytesStoreSupplier;
import org.apache.kafka.streams.test.TestRecord;

/**
 * Reference harness: runs table operations and joins of the real Kafka
 * Streams under TopologyTestDriver for the cases read from stdin and prints
 * the results. Used by TestTablesMatchKafkaStreams
 * (pkg/stream/kstreams_ref_test.go), which runs the same topologies with
 * package stream and compares.
 *
 * <pre>
 * case NAME
 * config op=OP [diff=MS after=MS grace=MS]   stream-stream joins: before=diff, after, grace
 * pipe TOPIC KEY VALUE TS   a record on topic left or right: String KEY, Long VALUE ("null": a tombstone), timestamp TS ms
 * end                       closes the case, prints "end"
 * </pre>
 *
 * After each pipe the records written to topic "out" since the previous
 * pipe are printed, one a line, as "KEY VALUE TS" (VALUE "null" for a
 * tombstone), then "--". Keys and values are Strings and Longs; the
 * functions below (FILTER, MAP, GROUP_*, JOIN) are mirrored by the Go test.
 * Caching is off, stores are in memory, and left and outer stream-stream
 * joins check for closed windows at every record (internal emit interval 0).
 *
 * <p>Ops: source, filter, filternot, mapvalues, filter-mapvalues,
 * {count,sum,reduce}-by-{value,key}, filter-count-by-value,
 * mapvalues-sum-by-key (tables, topic left); st-{inner,left}
 * (stream left, table right); tt-{inner,left,outer} (table left, table
 * right); ss-{inner,left,outer} (stream left, stream right, join window
 * diff and grace); sg-{inner,left} (stream left, global table right, looked
 * up by GLOBAL_KEY); suppress, suppress-count-by-value (table left,
 * suppress(untilTimeLimit(limit)), buffer of maxrec keys or unbounded);
 * fk-{inner,left} (table left joined on FOREIGN_KEY with table right),
 * fk-filter-left (the same left join of left filtered to values mod 4 != 3
 * with right filtered to even values); vsource (versioned table left, its
 * toStream); st-{inner,left}-versioned (stream left, versioned table
 * right), st-left-versioned-filter (the same with right filtered to values
 * mod 3 != 0): the versioned store keeps retention=MS of history, in
 * segments of seg=MS (0: the default), and the join has
 * Joined.withGracePeriod(grace) unless grace=-1.
 */
public final class Main {
    private Main() {}

    /** The joiner: left * 1000 + right, a missing side as -1 (left) or 999 (right). */
    static final ValueJoiner<Long, Long, Long> JOIN = (l, r) -> (l == null ? -1 : l) * 1000 + (r == null ? 999 : r);

    /** The key a stream record looks up in the global table: its key's first letter and its value mod 3 + 1. */
    static final KeyValueMapper<String, Long, String> GLOBAL_KEY = (k, v) -> k.substring(0, 1) + (v % 3 + 1);

    /** The foreign key of a left entry: its key's first letter and its value mod 3, none (null) for the value 9. */
    static final BiFunction<String, Long, String> FOREIGN_KEY = (k, v) -> v == 9 ? null : k.substring(0, 1) + (v % 3);

    public static void main(final String[] args) throws IOException {
        final BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        final BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), 1 << 16);
        final Path stateRoot = Files.createTempDirectory("kstreams-table-ref-");
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
                        require(f.length == 5, lineNo, "pipe TOPIC KEY VALUE TS");
                        current.pipe(f[1], f[2], f[3].equals("null") ? null : Long.valueOf(f[3]), Long.parseLong(f[4]));
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

    static Topology topology(final Map<String, String> cfg) {
        final String op = cfg.get("op");
        final StreamsBuilder b = new StreamsBuilder();
        final Consumed<String, Long> consumed = Consumed.with(Serdes.String(), Serdes.Long());
        final Produced<String, Long> produced = Produced.with(Serdes.String(), Serdes.Long());
        final Grouped<String, Long> grouped = Grouped.with(Serdes.String(), Serdes.Long());
        KStream<String, Long> result;
        switch (op) {
            case "source":
                result = b.table("left", consumed).toStream();
                break;
            case "filter":
                result = b.table("left", consumed).filter((k, v) -> v % 2 == 0).toStream();
                break;
            case "filternot":
                result = b.table("left", consumed).filterNot((k, v) -> v % 2 == 0).toStream();
                break;
            case "mapvalues":
                result = b.table("left", consumed).mapValues((k, v) -> v * 10 + k.length()).toStream();
                break;
            case "filter-mapvalues":
                result = b.table("left", consumed).filter((k, v) -> v % 3 != 0).mapValues((k, v) -> v * 10 + k.length()).toStream();
                break;
            case "count-by-value":
                result = byValue(b.table("left", consumed), grouped).count().toStream();
                break;
            case "count-by-key":
                result = byKey(b.table("left", consumed), grouped).count().toStream();
                break;
            case "sum-by-value":
                result = byValue(b.table("left", consumed), grouped).aggregate(() -> 0L, (k, v, a) -> a + v, (k, v, a) -> a - v).toStream();
                break;
            case "sum-by-key":
                result = byKey(b.table("left", consumed), grouped).aggregate(() -> 0L, (k, v, a) -> a + v, (k, v, a) -> a - v).toStream();
                break;
            case "reduce-by-value":
                result = byValue(b.table("left", consumed), grouped).reduce((a, v) -> a + v, (a, v) -> a - v).toStream();
                break;
            case "reduce-by-key":
                result = byKey(b.table("left", consumed), grouped).reduce((a, v) -> a + v, (a, v) -> a - v).toStream();
                break;
            case "filter-count-by-value":
                result = byValue(b.table("left", consumed).filter((k, v) -> v % 2 == 0), grouped).count().toStream();
                break;
            case "mapvalues-sum-by-key":
                result = byKey(b.table("left", consumed).mapValues((k, v) -> v * 10 + k.length()), grouped)
                    .aggregate(() -> 0L, (k, v, a) -> a + v, (k, v, a) -> a - v).toStream();
                break;
            case "st-inner":
                result = b.stream("left", consumed).join(b.table("right", consumed), JOIN, Joined.with(Serdes.String(), Serdes.Long(), Serdes.Long()));
                break;
            case "st-left":
                result = b.stream("left", consumed).leftJoin(b.table("right", consumed), JOIN, Joined.with(Serdes.String(), Serdes.Long(), Serdes.Long()));
                break;
            case "suppress":
                result = b.table("left", consumed).suppress(suppressed(cfg)).toStream();
                break;
            case "suppress-count-by-value":
                result = byValue(b.table("left", consumed).suppress(suppressed(cfg)), grouped).count().toStream();
                break;
            case "sg-inner":
                result = b.stream("left", consumed).join(b.globalTable("right", consumed), GLOBAL_KEY, JOIN);
                break;
            case "sg-left":
                result = b.stream("left", consumed).leftJoin(b.globalTable("right", consumed), GLOBAL_KEY, JOIN);
                break;
            case "vsource":
                result = b.table("left", consumed, versioned(cfg)).toStream();
                break;
            case "st-inner-versioned":
                result = b.stream("left", consumed).join(b.table("right", consumed, versioned(cfg)), JOIN, versionedJoined(cfg));
                break;
            case "st-left-versioned":
                result = b.stream("left", consumed).leftJoin(b.table("right", consumed, versioned(cfg)), JOIN, versionedJoined(cfg));
                break;
            case "st-left-versioned-filter":
                result = b.stream("left", consumed).leftJoin(b.table("right", consumed, versioned(cfg)).filter((k, v) -> v % 3 != 0), JOIN, versionedJoined(cfg));
                break;
            case "fk-inner":
                result = b.table("left", consumed).join(b.table("right", consumed), FOREIGN_KEY, JOIN).toStream();
                break;
            case "fk-left":
                result = b.table("left", consumed).leftJoin(b.table("right", consumed), FOREIGN_KEY, JOIN).toStream();
                break;
            case "fk-filter-left":
                result = b.table("left", consumed).filter((k, v) -> v % 4 != 3)
                    .leftJoin(b.table("right", consumed).filter((k, v) -> v % 2 == 0), FOREIGN_KEY, JOIN).toStream();
                break;
            case "tt-inner":
                result = b.table("left", consumed).join(b.table("right", consumed), JOIN).toStream();
                break;
            case "tt-left":
                result = b.table("left", consumed).leftJoin(b.table("right", consumed), JOIN).toStream();
                break;
            case "tt-outer":
                result = b.table("left", consumed).outerJoin(b.table("right", consumed), JOIN).toStream();
                break;
            case "ss-inner":
            case "ss-left":
            case "ss-outer": {
                final JoinWindows w = JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(ms(cfg, "diff")), Duration.ofMillis(ms(cfg, "grace")))
                    .after(Duration.ofMillis(ms(cfg, "after")));
                final StreamJoined<String, Long, Long> sj = StreamJoined.with(Serdes.String(), Serdes.Long(), Serdes.Long());
                final KStream<String, Long> l = b.stream("left", consumed);
                final KStream<String, Long> r = b.stream("right", consumed);
                if (op.equals("ss-inner")) {
                    result = l.join(r, JOIN, w, sj);
                } else if (op.equals("ss-left")) {
                    result = l.leftJoin(r, JOIN, w, sj);
                } else {
                    result = l.outerJoin(r, JOIN, w, sj);
                }
                break;
            }
            default:
                throw new IllegalArgumentException("unknown op " + op);
        }
        result.to("out", produced);
        return b.build();
    }

    /** A versioned store keeping retention ms of history, in segments of seg ms (0: the default). */
    static Materialized<String, Long, org.apache.kafka.streams.state.KeyValueStore<org.apache.kafka.common.utils.Bytes, byte[]>> versioned(final Map<String, String> cfg) {
        final long seg = ms(cfg, "seg");
        final VersionedBytesStoreSupplier supplier = seg > 0
            ? Stores.persistentVersionedKeyValueStore("versioned", Duration.ofMillis(ms(cfg, "retention")), Duration.ofMillis(seg))
            : Stores.persistentVersionedKeyValueStore("versioned", Duration.ofMillis(ms(cfg, "retention")));
        return Materialized.<String, Long>as(supplier).withKeySerde(Serdes.String()).withValueSerde(Serdes.Long());
    }

    /** Joined with the grace period grace, or none when grace is -1. */
    static Joined<String, Long, Long> versionedJoined(final Map<String, String> cfg) {
        final Joined<String, Long, Long> j = Joined.with(Serdes.String(), Serdes.Long(), Serdes.Long());
        final long grace = ms(cfg, "grace");
        return grace < 0 ? j : j.withGracePeriod(Duration.ofMillis(grace));
    }

    /** untilTimeLimit(limit) with an unbounded buffer, or one of maxrec keys that emits early. */
    @SuppressWarnings("unchecked")
    static org.apache.kafka.streams.kstream.Suppressed<Object> suppressed(final Map<String, String> cfg) {
        final long maxrec = ms(cfg, "maxrec");
        final org.apache.kafka.streams.kstream.Suppressed.BufferConfig<?> buf = maxrec > 0
            ? org.apache.kafka.streams.kstream.Suppressed.BufferConfig.maxRecords(maxrec).emitEarlyWhenFull()
            : org.apache.kafka.streams.kstream.Suppressed.BufferConfig.unbounded();
        return org.apache.kafka.streams.kstream.Suppressed.untilTimeLimit(Duration.ofMillis(ms(cfg, "limit")), buf);
    }

    /** Regroups by "g" + value % 3: an update may move between groups. */
    static KGroupedTable<String, Long> byValue(final KTable<String, Long> t, final Grouped<String, Long> g) {
        return t.groupBy((k, v) -> KeyValue.pair("g" + (v % 3), v), g);
    }

    /** Regroups by the key's first letter: an update stays in its group. */
    static KGroupedTable<String, Long> byKey(final KTable<String, Long> t, final Grouped<String, Long> g) {
        return t.groupBy((k, v) -> KeyValue.pair(k.substring(0, 1), v), g);
    }

    private static final class Case {
        private final TopologyTestDriver driver;
        private final TestInputTopic<String, Long> left;
        private final TestInputTopic<String, Long> right;
        private final TestOutputTopic<String, Long> result;
        private final BufferedWriter out;

        Case(final Map<String, String> cfg, final Path stateDir, final BufferedWriter out) {
            final Properties p = new Properties();
            p.put(StreamsConfig.APPLICATION_ID_CONFIG, "ref");
            p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
            p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
            p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
            p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
            p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.LongSerde.class);
            // Left and outer stream-stream joins look for closed windows at
            // every record, not once per second of wall-clock time.
            p.put(StreamsConfig.InternalConfig.EMIT_INTERVAL_MS_KSTREAMS_OUTER_JOIN_SPURIOUS_RESULTS_FIX, 0L);
            p.put(StreamsConfig.DSL_STORE_SUPPLIERS_CLASS_CONFIG, BuiltInDslStoreSuppliers.InMemoryDslStoreSuppliers.class);
            this.driver = new TopologyTestDriver(topology(cfg), p, Instant.EPOCH);
            this.left = driver.createInputTopic("left", new StringSerializer(), new LongSerializer());
            this.right = driver.createInputTopic("right", new StringSerializer(), new LongSerializer());
            this.result = driver.createOutputTopic("out", new StringDeserializer(), new LongDeserializer());
            this.out = out;
        }

        void pipe(final String topic, final String key, final Long value, final long ts) throws IOException {
            final TestInputTopic<String, Long> t;
            switch (topic) {
                case "left":
                    t = left;
                    break;
                case "right":
                    t = right;
                    break;
                default:
                    throw new IllegalArgumentException("unknown topic " + topic);
            }
            t.pipeInput(new TestRecord<>(key, value, Instant.ofEpochMilli(ts)));
            for (final TestRecord<String, Long> r : result.readRecordsToList()) {
                out.write(r.key() + " " + r.value() + " " + r.timestamp());
                out.newLine();
            }
            out.write("--");
            out.newLine();
        }

        void close() {
            driver.close();
        }
    }
}
