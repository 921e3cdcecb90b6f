#!/usr/bin/env bash
# kafka-tools.sh — run Apache Kafka's own command-line tools (the 4.4 release
# that scripts/kafka-local.sh runs as a broker) without a Kafka tarball: the
# org.apache.kafka:kafka-tools jar and its runtime dependencies are fetched
# from Maven Central with `mvn` once and cached next to the broker jars.
#
# Usage: scripts/kafka-tools.sh classpath
#        scripts/kafka-tools.sh TOOL [ARGS...]
#
#   classpath   fetch the jars (first time only) and print the Java classpath
#               on stdout (a "DIR/*" wildcard entry), for `java -cp`.
#   TOOL        one of the tools below, run with ARGS exactly as the script of
#               the same name in a Kafka distribution's bin/ would run it:
#
#     kafka-topics            org.apache.kafka.tools.TopicCommand
#     kafka-consumer-groups   org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
#     kafka-console-consumer  org.apache.kafka.tools.consumer.ConsoleConsumer
#     kafka-console-producer  org.apache.kafka.tools.ConsoleProducer
#     kafka-get-offsets       org.apache.kafka.tools.GetOffsetShell
#     kafka-configs           org.apache.kafka.tools.ConfigCommand
#     kafka-broker-api-versions org.apache.kafka.tools.BrokerApiVersionsCommand
#
# Example, against `emostream run` (embedded broker on 127.0.0.1:9092):
#   scripts/kafka-tools.sh kafka-topics --bootstrap-server 127.0.0.1:9092 --describe --topic topic1
#
# Environment:
#   KAFKA_CACHE_DIR   jar cache root, shared with scripts/kafka-local.sh
#                     (default ~/.cache/emostream/kafka-4.4.0); the tools'
#                     jars go to its tools-libs/ subdirectory.
#   KAFKA_TOOLS_OPTS  extra JVM options (default: a small heap and a fast
#                     start, "-Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto").
#
# The tools log warnings and errors to stderr (log4j2). Everything this script
# says itself also goes to stderr, so `classpath` prints only the classpath.
set -euo pipefail

log() { printf 'kafka-tools: %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
# Pinned versions (the broker's), need, and the Maven fetch, shared with
# kafka-local.sh.
# shellcheck source=scripts/lib/kafka-maven.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka-maven.sh"

CACHE_DIR=$KAFKA_CACHE_ROOT
TOOLS_DIR=$CACHE_DIR/tools
LIB_DIR=$CACHE_DIR/tools-libs
MARKER=$TOOLS_DIR/.complete
RECIPE="kafka-tools:${KAFKA_VERSION} log4j:${LOG4J_VERSION} slf4j:${SLF4J_VERSION}"
LOG4J_CONF=$TOOLS_DIR/log4j2-tools.xml

write_pom() {
	maven_write_pom "$TOOLS_DIR/pom.xml" scripts/kafka-tools.sh kafka-tools-jars kafka-tools "the tools' jars"
}

write_log4j() {
	cat >"$LOG4J_CONF" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="ERROR">
  <Appenders><Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="[%p] %m (%c)%n"/></Console></Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="stderr"/></Root></Loggers>
</Configuration>
EOF
}

fetch_jars() {
	if maven_fetched "$MARKER" "$RECIPE" "$LIB_DIR/kafka-tools-${KAFKA_VERSION}.jar"; then
		return
	fi
	need mvn
	log "fetching org.apache.kafka:kafka-tools:${KAFKA_VERSION} and its runtime dependencies from Maven Central (first run only)..."
	mkdir -p "$TOOLS_DIR"
	# Another process may fetch at the same time (parallel tests): one
	# fetch at a time, and the second one finds the marker.
	exec 9>"$TOOLS_DIR/.lock"
	flock 9
	if [[ -f $MARKER && "$(<"$MARKER")" == "$RECIPE" ]]; then
		flock -u 9
		return
	fi
	rm -rf "$LIB_DIR"
	write_pom
	local start=$SECONDS
	maven_copy_deps "$TOOLS_DIR/pom.xml" "$LIB_DIR" "the Kafka tools' jars"
	[[ -f $LIB_DIR/kafka-tools-${KAFKA_VERSION}.jar ]] || die "kafka-tools jar missing after mvn run"
	write_log4j
	echo "$RECIPE" >"$MARKER"
	flock -u 9
	log "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - start))s"
}

tool_class() {
	case "$1" in
	kafka-topics) echo org.apache.kafka.tools.TopicCommand ;;
	kafka-consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
	kafka-console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
	kafka-console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
	kafka-get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
	kafka-configs) echo org.apache.kafka.tools.ConfigCommand ;;
	kafka-broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
	*) return 1 ;;
	esac
}

usage() {
	sed -n '7,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd=${1:-}
case "$cmd" in
"" | -h | --help | help) usage ;;
classpath)
	fetch_jars
	echo "$LIB_DIR/*"
	;;
*)
	class=$(tool_class "$cmd") || {
		log "unknown tool '$cmd'"
		usage
	}
	shift
	need java
	fetch_jars
	[[ -f $LOG4J_CONF ]] || write_log4j
	# shellcheck disable=SC2086 # KAFKA_TOOLS_OPTS is a list of JVM flags.
	exec java ${KAFKA_TOOLS_OPTS:--Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto} \
		-Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONF" \
		-cp "$LIB_DIR/*" "$class" "$@"
	;;
esac
