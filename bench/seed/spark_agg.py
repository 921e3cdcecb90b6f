"""The seed's Spark aggregation, rewritten from its README for `make bench-seed`.

The original EmoStream's `spark_agg.py` consumes topic1 with Spark Structured
Streaming, counts emojis in 2-second windows and publishes the counts to
topic2. This file does that the usual way: the Kafka source, the JSON value
parsed with a schema, a watermark on the event time, a tumbling 2 s window
grouped by emoji, append output mode (a window is written once, when the
watermark passes its end), the Kafka sink. Spark's defaults otherwise (local
master on every core, default trigger, 200 shuffle partitions), except the UI,
which is off (no port 4040, no progress bars in the log).

The watermark delay is EmoStream's grace (500 ms), and the output is
EmoStream's topic2 contract (key emoji_type, value {"window_start",
"window_end", "emoji_type", "count", "bursts"} with epoch-ms times and
bursts = ceil(count / 1000)) so the two stacks' counts can be compared.

The Kafka connector (org.apache.spark:spark-sql-kafka-0-10_2.13) comes from
the local Maven repository: `make bench-seed` fetches it with mvn and passes
an Ivy settings file whose only resolver is ~/.m2/repository.

Usage: python spark_agg.py --brokers HOST:PORT --input T1 --output T2
       --checkpoint DIR --ivy-settings FILE --ivy-dir DIR
"""

import argparse
import signal
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

CONNECTOR = "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0"

SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("emoji_type", StringType()),
        StructField("timestamp", LongType()),
    ]
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--input", default="topic1")
    ap.add_argument("--output", default="topic2")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--ivy-settings", required=True)
    ap.add_argument("--ivy-dir", required=True)
    ap.add_argument("--window", default="2 seconds")
    ap.add_argument("--watermark", default="500 milliseconds")
    args = ap.parse_args()

    spark = (
        SparkSession.builder.appName("emostream-seed-spark-agg")
        .master("local[*]")
        .config("spark.jars.packages", CONNECTOR)
        .config("spark.jars.ivySettings", args.ivy_settings)
        .config("spark.jars.ivy", args.ivy_dir)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")

    events = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.brokers)
        .option("subscribe", args.input)
        .option("startingOffsets", "latest")
        .load()
        .select(F.from_json(F.col("value").cast("string"), SCHEMA).alias("e"))
        .select("e.*")
        .where(F.col("emoji_type").isNotNull() & F.col("timestamp").isNotNull())
        .withColumn("event_time", F.timestamp_millis(F.col("timestamp")))
    )
    counts = (
        events.withWatermark("event_time", args.watermark)
        .groupBy(F.window("event_time", args.window), F.col("emoji_type"))
        .count()
    )
    out = counts.select(
        F.col("emoji_type").alias("key"),
        F.to_json(
            F.struct(
                F.unix_millis(F.col("window.start")).alias("window_start"),
                F.unix_millis(F.col("window.end")).alias("window_end"),
                F.col("emoji_type"),
                F.col("count"),
                F.ceil(F.col("count") / 1000).alias("bursts"),
            )
        ).alias("value"),
    )
    query = (
        out.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", args.brokers)
        .option("topic", args.output)
        .option("checkpointLocation", args.checkpoint)
        .outputMode("append")
        .start()
    )
    print("spark_agg: query started", flush=True)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        query.awaitTermination()
    except SystemExit:
        pass
    finally:
        query.stop()
        spark.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
