package emostream.bench;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindowedKStream;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;

/**
 * EmoStream's windowed aggregator written with Kafka Streams 4.4.0, the peer
 * of examples/emostream/aggregator in the throughput comparison
 * (bench/compare):
 *
 * <pre>
 * input (String key = emoji, JSON event; event time = its "timestamp" field,
 *        records whose value is not a valid event are skipped)
 *   -> groupByKey -> TimeWindows.ofSizeAndGrace(2 s, 500 ms) -> count
 *   -> suppress(untilWindowCloses(unbounded()))   (or emitStrategy(onWindowClose))
 *   -> {"window_start","window_end","emoji_type","count","bursts"}  (bursts = ceil(count / scale))
 *   -> output (String key = emoji)
 * </pre>
 *
 * Windows close by stream time only (Kafka Streams has no wall-clock close).
 * It runs until SIGTERM/SIGINT, then closes Kafka Streams cleanly.
 *
 * <p>Options are "--name value" arguments, each with an environment fallback
 * KSTREAMS_NAME (upper case, '-' as '_'); see {@link #usage()}.
 */
public final class KStreamsBench {
    private KStreamsBench() {}

    // ------------------------------------------------------------ options --

    private static final String[][] OPTIONS = {
        // name, default, help
        {"brokers", "127.0.0.1:39092", "bootstrap servers (also KAFKA_BROKERS)"},
        {"app-id", "emostream-kstreams-bench", "application.id (consumer group, internal topic prefix)"},
        {"input", "topic1", "input topic"},
        {"output", "topic2", "output topic"},
        {"guarantee", "at_least_once", "processing.guarantee: at_least_once or exactly_once_v2"},
        {"commit-ms", "", "commit.interval.ms (empty: Kafka Streams' default, 30000 or 100 with exactly_once_v2)"},
        {"threads", "1", "num.stream.threads"},
        {"cache-bytes", "", "statestore.cache.max.bytes (empty: default 10 MiB)"},
        {"store", "memory", "window store: memory (Stores.inMemoryWindowStore) or rocksdb (the default store)"},
        {"emit", "suppress", "suppress (suppress(untilWindowCloses(unbounded()))) or onclose (emitStrategy(onWindowClose()))"},
        {"window-ms", "2000", "tumbling window size"},
        {"grace-ms", "500", "grace period"},
        {"scale", "1000", "bursts = ceil(count / scale)"},
        {"state-dir", "", "state.dir (empty: a new temporary directory, deleted at exit)"},
    };

    private static String usage() {
        StringBuilder sb = new StringBuilder("usage: KStreamsBench [--name value]...\n");
        for (String[] o : OPTIONS) {
            sb.append(String.format(Locale.ROOT, "  --%-12s %s (env KSTREAMS_%s, default \"%s\")%n",
                o[0], o[2], o[0].toUpperCase(Locale.ROOT).replace('-', '_'), o[1]));
        }
        return sb.toString();
    }

    private static Map<String, String> parseOptions(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (String[] o : OPTIONS) {
            String env = System.getenv("KSTREAMS_" + o[0].toUpperCase(Locale.ROOT).replace('-', '_'));
            if (env == null && o[0].equals("brokers")) {
                env = System.getenv("KAFKA_BROKERS");
            }
            opts.put(o[0], env != null ? env : o[1]);
        }
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("-help") || a.equals("--help")) {
                System.out.print(usage());
                System.exit(0);
            }
            if (!a.startsWith("--")) {
                die("unexpected argument " + a + "\n" + usage());
            }
            String name = a.substring(2);
            String value;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else {
                if (i + 1 >= args.length) {
                    die("missing value for " + a);
                }
                value = args[++i];
            }
            if (!opts.containsKey(name)) {
                die("unknown option --" + name + "\n" + usage());
            }
            opts.put(name, value);
        }
        return opts;
    }

    private static void die(String msg) {
        System.err.println("kstreams-bench: " + msg);
        System.exit(2);
    }

    private static long parseLong(Map<String, String> opts, String name) {
        try {
            return Long.parseLong(opts.get(name).trim());
        } catch (NumberFormatException e) {
            die("--" + name + ": not an integer: " + opts.get(name));
            return 0;
        }
    }

    // ------------------------------------------------------------- events --

    /** One topic1 value: {"user_id": "...", "emoji_type": "...", "timestamp": epoch ms}. */
    record Event(String userId, String emojiType, long timestamp) {}

    private static final ObjectMapper MAPPER = new ObjectMapper();
    /**
     * Writes characters outside the BMP (most emojis) as 4-byte UTF-8, as Go
     * does; by default Jackson's UTF-8 generator escapes them as a
     * surrogate pair ("\uD83D\uDD25").
     */
    private static final JsonFactory JSON = JsonFactory.builder()
        .enable(JsonWriteFeature.COMBINE_UNICODE_SURROGATES_IN_UTF8)
        .build();

    /**
     * Decodes a topic1 value as wire.DecodeEvent does in spirit: a JSON object
     * with a string user_id of 1 to 128 bytes, a non-empty string emoji_type
     * and a non-negative integer timestamp. Anything else is a
     * SerializationException, which LogAndContinueExceptionHandler skips.
     * (The Go decoder also checks that emoji_type is exactly one emoji; that
     * check is left out here.)
     */
    static final class EventDeserializer implements Deserializer<Event> {
        @Override
        public Event deserialize(String topic, byte[] data) {
            if (data == null) {
                return null;
            }
            JsonNode n;
            try {
                n = MAPPER.readTree(data);
            } catch (IOException e) {
                throw new SerializationException("invalid json", e);
            }
            if (n == null || !n.isObject()) {
                throw new SerializationException("not a json object");
            }
            JsonNode user = n.get("user_id");
            JsonNode emoji = n.get("emoji_type");
            JsonNode ts = n.get("timestamp");
            if (user == null || !user.isTextual() || user.textValue().isEmpty()
                || user.textValue().getBytes(StandardCharsets.UTF_8).length > 128) {
                throw new SerializationException("invalid user_id");
            }
            if (emoji == null || !emoji.isTextual() || emoji.textValue().isEmpty()) {
                throw new SerializationException("invalid emoji_type");
            }
            if (ts == null || !ts.isIntegralNumber() || !ts.canConvertToLong() || ts.longValue() < 0) {
                throw new SerializationException("invalid timestamp");
            }
            return new Event(user.textValue(), emoji.textValue(), ts.longValue());
        }
    }

    static final class EventSerializer implements Serializer<Event> {
        @Override
        public byte[] serialize(String topic, Event e) {
            if (e == null) {
                return null;
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream(96);
            try (JsonGenerator g = JSON.createGenerator(out)) {
                g.writeStartObject();
                g.writeStringField("user_id", e.userId());
                g.writeStringField("emoji_type", e.emojiType());
                g.writeNumberField("timestamp", e.timestamp());
                g.writeEndObject();
            } catch (IOException ex) {
                throw new UncheckedIOException(ex);
            }
            return out.toByteArray();
        }
    }

    /** Event time is the value's "timestamp"; a value that did not decode gives -1 and is dropped. */
    public static final class EventTimeExtractor implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            return record.value() instanceof Event e ? e.timestamp() : -1L;
        }
    }

    // ------------------------------------------------------------ results --

    /** One topic2 value, wire.Result. */
    record Result(long windowStart, long windowEnd, String emojiType, long count, long bursts) {}

    /**
     * Writes {"window_start":..,"window_end":..,"emoji_type":"..","count":..,"bursts":..}:
     * the field order and number formatting of Go's json.Marshal(wire.Result)
     * (no spaces, integers in decimal). For a valid emoji the bytes are the
     * same; the escaping rules differ only for characters an emoji never has
     * (Go escapes &lt; &gt; &amp; U+2028 U+2029).
     */
    static final class ResultSerializer implements Serializer<Result> {
        @Override
        public byte[] serialize(String topic, Result r) {
            if (r == null) {
                return null;
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream(112);
            try (JsonGenerator g = JSON.createGenerator(out)) {
                g.writeStartObject();
                g.writeNumberField("window_start", r.windowStart());
                g.writeNumberField("window_end", r.windowEnd());
                g.writeStringField("emoji_type", r.emojiType());
                g.writeNumberField("count", r.count());
                g.writeNumberField("bursts", r.bursts());
                g.writeEndObject();
            } catch (IOException ex) {
                throw new UncheckedIOException(ex);
            }
            return out.toByteArray();
        }
    }

    /** ceil(count / scale), as wire.Bursts. */
    static long bursts(long count, long scale) {
        if (count <= 0) {
            return 0;
        }
        if (scale < 1) {
            scale = 1;
        }
        long b = count / scale;
        return count % scale != 0 ? b + 1 : b;
    }

    // ----------------------------------------------------------- topology --

    static Topology topology(String input, String output, long windowMs, long graceMs, long scale, String store, String emit) {
        Serde<Event> events = Serdes.serdeFrom(new EventSerializer(), new EventDeserializer());
        Serde<Result> results = Serdes.serdeFrom(new ResultSerializer(), (topic, data) -> {
            throw new UnsupportedOperationException("results are only written");
        });
        Duration size = Duration.ofMillis(windowMs);
        Duration grace = Duration.ofMillis(graceMs);
        String storeName = "emoji-counts-store";

        Materialized<String, Long, WindowStore<Bytes, byte[]>> mat;
        switch (store) {
            case "memory":
                // Retention size + grace: what Kafka Streams uses when none is given.
                mat = Materialized.<String, Long>as(Stores.inMemoryWindowStore(storeName, size.plus(grace), size, false));
                break;
            case "rocksdb":
                mat = Materialized.as(storeName);
                break;
            default:
                die("--store must be memory or rocksdb, got " + store);
                return null;
        }
        mat = mat.withKeySerde(Serdes.String()).withValueSerde(Serdes.Long());

        StreamsBuilder b = new StreamsBuilder();
        TimeWindowedKStream<String, Event> windowed = b
            .stream(input, Consumed.with(Serdes.String(), events).withTimestampExtractor(new EventTimeExtractor()))
            .groupByKey(Grouped.with(Serdes.String(), events))
            .windowedBy(TimeWindows.ofSizeAndGrace(size, grace));
        KTable<Windowed<String>, Long> finals;
        switch (emit) {
            case "suppress":
                finals = windowed.count(mat).suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()));
                break;
            case "onclose":
                finals = windowed.emitStrategy(EmitStrategy.onWindowClose()).count(mat);
                break;
            default:
                die("--emit must be suppress or onclose, got " + emit);
                return null;
        }
        finals.toStream()
            .map((w, n) -> KeyValue.pair(w.key(),
                new Result(w.window().start(), w.window().end(), w.key(), n, bursts(n, scale))))
            .to(output, Produced.with(Serdes.String(), results));
        return b.build();
    }

    // --------------------------------------------------------------- main --

    public static void main(String[] args) throws Exception {
        Map<String, String> o = parseOptions(args);
        String guarantee = o.get("guarantee");
        if (!guarantee.equals(StreamsConfig.AT_LEAST_ONCE) && !guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2)) {
            die("--guarantee must be at_least_once or exactly_once_v2, got " + guarantee);
        }
        Path stateDir;
        boolean tempState = o.get("state-dir").isEmpty();
        stateDir = tempState ? Files.createTempDirectory("kstreams-bench-") : Path.of(o.get("state-dir"));

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.get("app-id"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.get("brokers"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, (int) parseLong(o, "threads"));
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG, LogAndContinueExceptionHandler.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        if (!o.get("commit-ms").isEmpty()) {
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, parseLong(o, "commit-ms"));
        }
        if (!o.get("cache-bytes").isEmpty()) {
            p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, parseLong(o, "cache-bytes"));
        }

        Topology top = topology(o.get("input"), o.get("output"), parseLong(o, "window-ms"), parseLong(o, "grace-ms"),
            parseLong(o, "scale"), o.get("store"), o.get("emit"));
        System.err.println("kstreams-bench: " + o);
        System.err.println(top.describe());

        KafkaStreams streams = new KafkaStreams(top, p);
        AtomicInteger exitCode = new AtomicInteger(0);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            long at = System.currentTimeMillis();
            System.err.printf(Locale.ROOT, "kstreams-bench: %.3fs after JVM start: state %s -> %s (at=%d)%n",
                (at - ManagementFactory.getRuntimeMXBean().getStartTime()) / 1000.0, before, now, at);
            if (now == KafkaStreams.State.ERROR) {
                exitCode.set(1);
                stopped.countDown();
            }
        });
        // One line per store partition restored, with wall-clock times, for
        // bench-scale's restore run (bench/compare/scale.go reads them).
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long from, long to) {
                System.err.printf(Locale.ROOT, "kstreams-bench: restore start store=%s partition=%d from=%d to=%d at=%d%n",
                    store, tp.partition(), from, to, System.currentTimeMillis());
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEndOffset, long numRestored) {
            }

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long totalRestored) {
                System.err.printf(Locale.ROOT, "kstreams-bench: restore end store=%s partition=%d records=%d at=%d%n",
                    store, tp.partition(), totalRestored, System.currentTimeMillis());
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams-bench: stream thread failed: " + e);
            e.printStackTrace();
            exitCode.set(1);
            stopped.countDown();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopped.countDown();
            try {
                closed.await();
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }, "kstreams-bench-shutdown"));

        streams.start();
        stopped.await();
        // Leave the consumer group (Kafka Streams stays in it by default until
        // the session times out), so the harness can delete the group.
        boolean clean = streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
            .withTimeout(Duration.ofSeconds(60)));
        if (tempState) {
            deleteTree(stateDir);
        }
        System.err.println("kstreams-bench: closed" + (clean ? "" : " (timed out)"));
        closed.countDown();
        System.exit(exitCode.get());
    }

    private static void deleteTree(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted((a, b) -> b.getNameCount() - a.getNameCount()).forEach(f -> {
                try {
                    Files.deleteIfExists(f);
                } catch (IOException ignored) {
                    // best effort
                }
            });
        } catch (IOException ignored) {
            // best effort
        }
    }
}
