"""The seed's ingest server, rewritten from its README for `make bench-seed`.

The original EmoStream (Flask + Kafka + Spark + Streamlit) had a Flask API
(`server.py`) that receives emoji data on POST /api and publishes it to Kafka
topic1 with kafka-python. This file follows that description: the Flask
development server (`app.run`, threaded, as `python server.py` starts it),
one KafkaProducer with kafka-python's defaults, and an answer as soon as the
record is handed to the producer -- before Kafka has it (kafka-python sends
in a background thread). It answers 202 {"accepted": 1} so the project's load
client counts it; the record layout is EmoStream's topic1 contract (key
emoji_type, value {"user_id", "emoji_type", "timestamp": epoch ms}, record
timestamp = event time) so both stacks can be checked against each other.

Usage: python server.py --brokers HOST:PORT --topic TOPIC --port PORT
"""

import argparse
import json
import logging
import signal
import sys
import time
from datetime import datetime

from flask import Flask, jsonify, request
from kafka import KafkaProducer


def parse_timestamp(value):
    """Epoch milliseconds from an int (epoch ms) or an RFC 3339 string."""
    if value is None:
        return int(time.time() * 1000)
    if isinstance(value, bool):
        raise ValueError("timestamp must be a string or an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    raise ValueError("timestamp must be a string or an integer")


def create_app(producer, topic):
    app = Flask(__name__)

    @app.route("/api", methods=["POST"])
    def api():
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return jsonify({"error": "body must be an emoji object"}), 400
        user_id, emoji = data.get("user_id"), data.get("emoji_type")
        if not isinstance(user_id, str) or not isinstance(emoji, str) or not emoji:
            return jsonify({"error": "user_id and emoji_type are required"}), 400
        try:
            ts = parse_timestamp(data.get("timestamp"))
        except ValueError as e:
            return jsonify({"error": str(e)}), 400
        record = {"user_id": user_id, "emoji_type": emoji, "timestamp": ts}
        producer.send(topic, key=emoji, value=record, timestamp_ms=ts)
        return jsonify({"accepted": 1}), 202

    @app.route("/healthz")
    def healthz():
        return "ok\n"

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", default="topic1")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    args = ap.parse_args()

    producer = KafkaProducer(
        bootstrap_servers=args.brokers.split(","),
        key_serializer=lambda k: k.encode("utf-8"),
        value_serializer=lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8"),
    )

    def stop(signum, frame):
        producer.flush(10)
        producer.close(10)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    create_app(producer, args.topic).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
