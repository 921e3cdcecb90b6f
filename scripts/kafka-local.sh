#!/usr/bin/env bash
# kafka-local.sh — run a real Apache Kafka (KRaft) locally, a single node or
# a small cluster, without Docker and without a Kafka tarball: the broker jars
# are fetched from Maven Central with `mvn` and cached.
#
# Usage: scripts/kafka-local.sh up|down|status|brokers [NODE]
#        scripts/kafka-local.sh stop|start|restart [NODE]
#        scripts/kafka-local.sh kill|pause|resume|pid NODE
#
#   up       fetch jars (first time only), format storage, start the node(s)
#            in the background, wait until the cluster answers metadata
#            requests with every node, then print KAFKA_BROKERS=<host:port,...>
#            on stdout. A no-op (apart from the readiness check and the final
#            line) when every node already runs. A state dir left by a stopped
#            or crashed broker is wiped first.
#   down     stop the node(s) (single node: SIGTERM, SIGKILL after 30 s; a
#            cluster: SIGKILL, its data is deleted anyway) and delete the state.
#   stop     stop like `down` (always SIGTERM first: a controlled shutdown),
#            but KEEP the state dir (config, data, logs), so `start` can bring
#            the same cluster back. With NODE, stop only that node.
#   start    start again on the data a previous `up` created and `stop` (or a
#            crash) left, without reformatting; wait for it and print
#            KAFKA_BROKERS= like `up`. Fails when there is no such data (use
#            `up`). A no-op apart from the readiness check when it runs. With
#            NODE, start only that node (and wait until the cluster has every
#            node again).
#   restart  `stop` then `start` (of NODE, or of everything): a restart that
#            keeps every topic, offset and transaction (for fault injection).
#   kill     SIGKILL node NODE (its state stays; `start NODE` brings it back).
#   pause    SIGSTOP node NODE (it holds its sockets but answers nothing).
#   resume   SIGCONT node NODE.
#   pid      print node NODE's pid (exit 1 when it does not run).
#   status   say whether each node runs and the cluster answers; exit 0 if so.
#   brokers  print the bootstrap addresses (host:port,...; only NODE's with
#            NODE) on stdout.
#
# Nodes are numbered 1..BROKERS. Every node is a combined KRaft broker and
# controller (process.roles=broker,controller); node i listens on
# KAFKA_PORT+2(i-1) (clients) and KAFKA_CONTROLLER_PORT+2(i-1) (controller).
#
#   BROKERS=1 (default)  one node: 127.0.0.1:29092, controller 29093,
#                        state in /tmp/emostream-kafka (as it always was).
#   BROKERS=3            three nodes: clients 127.0.0.1:29392, 29394, 29396,
#                        controllers 29393, 29395, 29397, state in
#                        /tmp/emostream-kafka-cluster/node-{1,2,3}; topics
#                        default to replication 3 and min.insync.replicas 2
#                        (the internal topics __consumer_offsets and
#                        __transaction_state too).
#
# Every node accepts consumer session timeouts down to 1 s
# (group.min.session.timeout.ms=1000), so short timeouts can be tested.
#
# Environment:
#   BROKERS                number of nodes (default 1)
#   KAFKA_CACHE_DIR        jar cache (default ~/.cache/emostream/kafka-4.4.0)
#   KAFKA_STATE_DIR        config, data, logs and pid file(s) (default above)
#   KAFKA_PORT             client (PLAINTEXT) port of node 1 on 127.0.0.1
#                          (default 29092; 29392 with BROKERS>1)
#   KAFKA_CONTROLLER_PORT  KRaft controller port of node 1 (default 29093;
#                          29393 with BROKERS>1)
#   KAFKA_HEAP_OPTS        JVM heap options per node (default "-Xms256m
#                          -Xmx512m"; "-Xms128m -Xmx384m" with BROKERS>1)
#   KAFKA_READY_TIMEOUT    seconds to wait for readiness (default 90)
#
# Everything except the final KAFKA_BROKERS= line of `up`/`start`/`restart` and
# the output of `brokers`/`pid` goes to stderr, so `eval "$(scripts/kafka-local.sh up)"` works.
set -euo pipefail

log() { printf 'kafka-local: %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
# Pinned versions, need, and the Maven fetch shared with kafka-tools.sh.
# shellcheck source=scripts/lib/kafka-maven.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka-maven.sh"

NODES=${BROKERS:-1}
[[ $NODES =~ ^[1-9][0-9]?$ ]] || die "BROKERS must be a node count (1, 3, ...), got '$NODES'"
CACHE_DIR=$KAFKA_CACHE_ROOT
HOST=127.0.0.1
if ((NODES == 1)); then
	STATE_DIR=${KAFKA_STATE_DIR:-/tmp/emostream-kafka}
	PORT=${KAFKA_PORT:-29092}
	CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29093}
	HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
else
	STATE_DIR=${KAFKA_STATE_DIR:-/tmp/emostream-kafka-cluster}
	PORT=${KAFKA_PORT:-29392}
	CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29393}
	HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}
fi
READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-90}
# Replication of the cluster's topics by default: 3 (min.insync 2) from three
# nodes on, else every node.
REPLICATION=$((NODES < 3 ? NODES : 3))
MIN_ISR=$((NODES < 3 ? 1 : 2))

LIB_DIR=$CACHE_DIR/libs
COMPLETE_MARKER=$CACHE_DIR/.complete
# Stored in the marker: changing any pinned version re-fetches the jars.
RECIPE="kafka_${SCALA_VERSION}:${KAFKA_VERSION} log4j:${LOG4J_VERSION} slf4j:${SLF4J_VERSION}"
CHECK_SRC=$CACHE_DIR/ReadyCheck.java

node_port() { echo $((PORT + 2 * ($1 - 1))); }
node_cport() { echo $((CONTROLLER_PORT + 2 * ($1 - 1))); }

# BOOTSTRAP lists every node's client address; VOTERS the KRaft quorum.
BOOTSTRAP=
VOTERS=
for ((i = 1; i <= NODES; i++)); do
	BOOTSTRAP+=${BOOTSTRAP:+,}$HOST:$(node_port "$i")
	VOTERS+=${VOTERS:+,}$i@$HOST:$(node_cport "$i")
done

# select_node points the per-node variables at node $1. A single node lives
# in STATE_DIR itself (as it always did), cluster nodes in STATE_DIR/node-i.
select_node() {
	NODE=$1
	NODE_PORT=$(node_port "$1")
	NODE_CPORT=$(node_cport "$1")
	if ((NODES == 1)); then
		NODE_DIR=$STATE_DIR
	else
		NODE_DIR=$STATE_DIR/node-$1
	fi
	PID_FILE=$NODE_DIR/kafka.pid
	OUT_FILE=$NODE_DIR/kafka.out
	LOG_DIR=$NODE_DIR/logs
	DATA_DIR=$NODE_DIR/data
	PROPS=$NODE_DIR/server.properties
	LOG4J_CONF=$NODE_DIR/log4j2.xml
	JVM_COMMON=(-Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR")
}
select_node 1

# ---------------------------------------------------------------- jar cache --

write_pom() {
	maven_write_pom "$CACHE_DIR/pom.xml" scripts/kafka-local.sh kafka-local-jars "kafka_${SCALA_VERSION}" "the broker jars" pin-plugin
}

# ReadyCheck asks the broker for real metadata through the Kafka admin client:
# the cluster must report a controller and at least args[1] (default 1)
# nodes, and a
# Metadata-based topic listing must succeed. Exit 0 means ready.
write_ready_check() {
	cat >"$CHECK_SRC" <<'EOF'
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

public class ReadyCheck {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "3000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        p.put(AdminClientConfig.RETRIES_CONFIG, "0");
        int want = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        try (Admin admin = Admin.create(p)) {
            DescribeClusterResult dc = admin.describeCluster();
            int nodes = dc.nodes().get(5, TimeUnit.SECONDS).size();
            if (nodes < want || dc.controller().get(5, TimeUnit.SECONDS) == null) {
                System.err.println("not ready: nodes=" + nodes);
                System.exit(2);
            }
            admin.listTopics().names().get(5, TimeUnit.SECONDS);
            System.out.println("ready: cluster " + dc.clusterId().get(5, TimeUnit.SECONDS) + ", " + nodes + " node(s)");
        } catch (Exception e) {
            System.err.println("not ready: " + e);
            System.exit(1);
        }
    }
}
EOF
}

fetch_jars() {
	if maven_fetched "$COMPLETE_MARKER" "$RECIPE" "$LIB_DIR/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar"; then
		log "using cached jars in $LIB_DIR"
		return
	fi
	need mvn
	log "fetching org.apache.kafka:kafka_${SCALA_VERSION}:${KAFKA_VERSION} and its runtime dependencies from Maven Central (first run only)..."
	mkdir -p "$CACHE_DIR"
	rm -rf "$LIB_DIR"
	write_pom
	local start=$SECONDS
	maven_copy_deps "$CACHE_DIR/pom.xml" "$LIB_DIR" "the Kafka jars"
	[[ -f $LIB_DIR/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar ]] || die "kafka jar missing after mvn run"
	echo "$RECIPE" >"$COMPLETE_MARKER"
	log "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - start))s"
}

# ----------------------------------------------------------------- process --

# running_pid prints the pid of the selected node when it runs.
running_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid.
	grep -q 'kafka\.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
	echo "$pid"
}

port_open() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# ready_check asks $1 (default every node) for metadata naming at least $2
# (default all) nodes.
ready_check() {
	java -cp "$LIB_DIR/*" -Dlog4j2.configurationFile="$CACHE_DIR/log4j2-quiet.xml" \
		-Xshare:auto -XX:TieredStopAtLevel=1 "$CHECK_SRC" "${1:-$BOOTSTRAP}" "${2:-$NODES}"
}

write_quiet_log4j() {
	cat >"$CACHE_DIR/log4j2-quiet.xml" <<'EOQ'
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="ERROR">
  <Appenders><Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="%m%n"/></Console></Appenders>
  <Loggers><Root level="OFF"><AppenderRef ref="stderr"/></Root></Loggers>
</Configuration>
EOQ
}

# wait_ready waits until every node in $@ (node numbers) runs and answers on
# its own port with metadata that names all NODES nodes.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) out n pid addr
	local nodes=("$@")
	local -A binds=() retries=()
	for n in "${nodes[@]}"; do
		select_node "$n"
		binds[$n]=$(bind_failures)
	done
	log "waiting (up to ${READY_TIMEOUT}s) for $(((NODES == 1)) && echo "the broker on $BOOTSTRAP" || echo "node(s) ${nodes[*]} of $BOOTSTRAP") to answer metadata requests..."
	while ((SECONDS < deadline)); do
		local ok=1
		for n in "${nodes[@]}"; do
			select_node "$n"
			if ! pid=$(running_pid); then
				# The default ports lie below Linux's ephemeral range
				# (32768-60999), so no client socket takes them; a port
				# set by KAFKA_PORT inside it can still be held for a
				# moment by one (CI saw it twice). Try again, twice.
				if (($(bind_failures) > binds[$n] && ${retries[$n]:-0} < 2)); then
					retries[$n]=$((${retries[$n]:-0} + 1))
					binds[$n]=$(bind_failures)
					log "node $n could not bind its port (in use for a moment); starting it again in 2s"
					sleep 2
					start_node
					ok=0
					break
				fi
				tail -n 40 "$OUT_FILE" "$LOG_DIR/server.log" >&2 2>/dev/null || true
				die "node $n exited during startup (logs in $LOG_DIR, $OUT_FILE)"
			fi
			addr=$HOST:$NODE_PORT
			if ! port_open "$HOST" "$NODE_PORT" || ! out=$(ready_check "$addr" 2>&1); then
				ok=0
				break
			fi
		done
		if ((ok)); then
			log "$out"
			return 0
		fi
		sleep 1
	done
	tail -n 40 "$LOG_DIR/server.log" >&2 2>/dev/null || true
	die "node $n did not become ready within ${READY_TIMEOUT}s (last check: ${out:-port closed}; logs in $LOG_DIR)"
}

# write_config writes the selected node's server.properties and log config.
write_config() {
	mkdir -p "$DATA_DIR" "$LOG_DIR"
	local what="single-node KRaft broker"
	((NODES == 1)) || what="node $NODE of a $NODES-node KRaft cluster"
	cat >"$PROPS" <<EOC
# Generated by scripts/kafka-local.sh — ${what} for tests.
process.roles=broker,controller
node.id=${NODE}
controller.quorum.voters=${VOTERS}
listeners=PLAINTEXT://${HOST}:${NODE_PORT},CONTROLLER://${HOST}:${NODE_CPORT}
advertised.listeners=PLAINTEXT://${HOST}:${NODE_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=${DATA_DIR}

num.partitions=1
default.replication.factor=${REPLICATION}
min.insync.replicas=${MIN_ISR}
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=${REPLICATION}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=${REPLICATION}
transaction.state.log.min.isr=${MIN_ISR}
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=${REPLICATION}
share.coordinator.state.topic.min.isr=${MIN_ISR}
group.initial.rebalance.delay.ms=0
# Consumer session timeouts down to 1 s, so failover can be tested quickly.
group.min.session.timeout.ms=1000

# Small segments and a fast cleaner so compaction is observable in tests.
log.segment.bytes=8388608
log.retention.check.interval.ms=30000
log.cleaner.backoff.ms=1000
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOC
	cat >"$LOG4J_CONF" <<EOC
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="server" fileName="${LOG_DIR}/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.controller" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
  </Loggers>
</Configuration>
EOC
}

random_cluster_id() {
	# A Kafka cluster id is 16 random bytes, base64url without padding. One
	# that starts with '-' reads as an option to kafka-storage (1 run in 64
	# failed so in CI); Kafka's own Uuid.randomUuid draws again then too.
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id == -* ]] || break
	done
	printf '%s\n' "$id"
}

# all_nodes lists 1..NODES.
all_nodes() { seq 1 "$NODES"; }

cmd_up() {
	need java
	already_up && return 0
	local n
	for n in $(all_nodes); do
		select_node "$n"
		running_pid >/dev/null && die "node $n runs but others do not: use 'start' to bring the rest back, or 'down'"
		ports_free
	done
	local start=$SECONDS
	fetch_jars
	write_ready_check
	write_quiet_log4j

	# A stale state dir (crashed broker) is wiped: every `up` starts clean.
	rm -rf "$STATE_DIR"
	mkdir -p "$STATE_DIR"
	local cluster_id
	cluster_id=$(random_cluster_id)
	for n in $(all_nodes); do
		select_node "$n"
		write_config
		log "formatting storage in $DATA_DIR (cluster id $cluster_id)"
		if ! java -Xmx256m "${JVM_COMMON[@]}" -cp "$LIB_DIR/*" kafka.tools.StorageTool \
			format -t "$cluster_id" -c "$PROPS" >"$NODE_DIR/format.log" 2>&1; then
			cat "$NODE_DIR/format.log" >&2
			die "kafka storage format failed"
		fi
	done

	launch "$start" $(all_nodes)
}

# launch starts nodes $2... on the config and storage in their state dirs,
# waits until they are ready and prints the KAFKA_BROKERS= line. $1 is when
# the command began.
launch() {
	local start=$1 n pids=()
	shift
	for n in "$@"; do
		select_node "$n"
		log "starting $(((NODES == 1)) && echo broker || echo "node $n on $HOST:$NODE_PORT") (logs: $LOG_DIR/server.log)"
		start_node
	done
	wait_ready "$@"
	for n in "$@"; do
		select_node "$n"
		pids+=("$(cat "$PID_FILE")")
	done
	log "$(((NODES == 1)) && echo broker || echo "node(s) $*") up (pid ${pids[*]}) in $((SECONDS - start))s"
	echo "KAFKA_BROKERS=$BOOTSTRAP"
}

# start_node starts the selected node's java process in the background and
# writes its pid file.
start_node() {
	# The broker appends to kafka.out; keep the previous run's output.
	# shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags.
	setsid nohup java $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "${JVM_COMMON[@]}" \
		-cp "$LIB_DIR/*" kafka.Kafka "$PROPS" >>"$OUT_FILE" 2>&1 </dev/null &
	echo "$!" >"$PID_FILE"
}

# bind_failures counts the selected node's "Address already in use" log lines.
bind_failures() {
	cat "$OUT_FILE" "$LOG_DIR/server.log" 2>/dev/null | grep -c "Address already in use" || true
}

# ports_free fails when another process holds the selected node's client or
# controller port.
ports_free() {
	if port_open "$HOST" "$NODE_PORT"; then
		die "port $HOST:$NODE_PORT is already in use by another process (set KAFKA_PORT to use another one)"
	fi
	if port_open "$HOST" "$NODE_CPORT"; then
		die "port $HOST:$NODE_CPORT is already in use by another process (set KAFKA_CONTROLLER_PORT)"
	fi
}

# props_match_ports fails when the selected node's config was written for
# other ports than KAFKA_PORT/KAFKA_CONTROLLER_PORT say.
props_match_ports() {
	[[ -f $PROPS ]] || return 0
	grep -qx "listeners=PLAINTEXT://${HOST}:${NODE_PORT},CONTROLLER://${HOST}:${NODE_CPORT}" "$PROPS" ||
		die "$PROPS was written for other ports than KAFKA_PORT=$PORT KAFKA_CONTROLLER_PORT=$CONTROLLER_PORT (BROKERS=$NODES)"
}

# already_up handles `up`/`start` when every node in $@ (default all) runs:
# check readiness and print the KAFKA_BROKERS= line. It fails (status 1)
# when one of them does not run.
already_up() {
	local n pid pids=()
	local nodes=("$@")
	((${#nodes[@]})) || mapfile -t nodes < <(all_nodes)
	for n in "${nodes[@]}"; do
		select_node "$n"
		pid=$(running_pid) || return 1
		props_match_ports
		pids+=("$pid")
	done
	log "$(((NODES == 1)) && echo broker || echo "node(s) ${nodes[*]}") already running (pid ${pids[*]})"
	[[ -f $CHECK_SRC ]] || write_ready_check
	wait_ready "${nodes[@]}"
	echo "KAFKA_BROKERS=$BOOTSTRAP"
}

# cmd_start starts node $1, or every node that does not run.
cmd_start() {
	need java
	local nodes=() n
	if [[ -n ${1:-} ]]; then
		nodes=("$1")
	else
		mapfile -t nodes < <(all_nodes)
	fi
	already_up "${nodes[@]}" && return 0
	local todo=()
	for n in "${nodes[@]}"; do
		select_node "$n"
		[[ -f $PROPS && -f $DATA_DIR/meta.properties ]] ||
			die "no formatted broker state in $NODE_DIR to start from (run 'up' for a fresh $( ((NODES == 1)) && echo broker || echo cluster))"
		props_match_ports
		running_pid >/dev/null && continue
		ports_free
		todo+=("$n")
	done
	local start=$SECONDS
	fetch_jars
	write_ready_check
	write_quiet_log4j
	log "starting on the existing data in $STATE_DIR (not reformatted)"
	# Nodes already running are waited for too, so the line means ready.
	launch "$start" "${todo[@]}"
}

# stop_nodes stops the nodes in $@ if they run (SIGTERM to all, SIGKILL
# after 30 s) and leaves their state dirs alone.
stop_nodes() {
	local n pid pids=() i
	for n in "$@"; do
		select_node "$n"
		if pid=$(running_pid); then
			log "stopping $(((NODES == 1)) && echo broker || echo "node $n") (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		else
			log "$(((NODES == 1)) && echo broker || echo "node $n") not running"
		fi
		rm -f "$PID_FILE"
	done
	for pid in "${pids[@]}"; do
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid did not stop within 30s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
	done
	((${#pids[@]} == 0)) || log "stopped"
}

# signal_node sends signal $1 to node $2.
signal_node() {
	local sig=$1 n=$2 pid
	select_node "$n"
	pid=$(running_pid) || die "node $n is not running"
	kill -"$sig" "$pid"
	log "sent SIG$sig to node $n (pid $pid)"
	if [[ $sig == KILL ]]; then
		local i
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		rm -f "$PID_FILE"
	fi
}

cmd_down() {
	if ((NODES == 1)); then
		stop_nodes 1
	else
		# The data goes anyway: no controlled shutdown (a cluster whose
		# controllers leave first would wait for them).
		local n pid
		for n in $(all_nodes); do
			select_node "$n"
			if pid=$(running_pid); then
				kill -CONT "$pid" 2>/dev/null || true
				kill -KILL "$pid" 2>/dev/null || true
				log "killed node $n (pid $pid)"
			fi
		done
		for n in $(all_nodes); do
			select_node "$n"
			while pid=$(running_pid); do sleep 0.1; done
		done
	fi
	rm -rf "$STATE_DIR"
}

cmd_stop() {
	if [[ -n ${1:-} ]]; then
		stop_nodes "$1"
	else
		# A paused node would never stop.
		local n pid
		for n in $(all_nodes); do
			select_node "$n"
			pid=$(running_pid) && kill -CONT "$pid" 2>/dev/null
		done
		mapfile -t n < <(all_nodes)
		stop_nodes "${n[@]}"
	fi
	[[ -d $STATE_DIR ]] && log "state kept in $STATE_DIR ('start' brings it back, 'down' deletes it)"
	return 0
}

cmd_status() {
	local n pid rc=0
	for n in $(all_nodes); do
		select_node "$n"
		local who="kafka-local:"
		((NODES == 1)) || who="kafka-local: node $n"
		if ! pid=$(running_pid); then
			echo "$who not running"
			rc=3
			continue
		fi
		if [[ -f $CHECK_SRC ]] && port_open "$HOST" "$NODE_PORT" && ready_check "$HOST:$NODE_PORT" 1 >/dev/null 2>&1; then
			echo "$who running (pid $pid), ready on $HOST:$NODE_PORT"
		else
			echo "$who running (pid $pid) but NOT answering on $HOST:$NODE_PORT"
			((rc == 3)) || rc=4
		fi
	done
	return "$rc"
}

# node_arg checks that $2 (of command $1) names a node.
node_arg() {
	[[ ${2:-} =~ ^[0-9]+$ ]] && (($2 >= 1 && $2 <= NODES)) ||
		die "$1: NODE must be 1..$NODES, got '${2:-}'"
}

cmd=${1:-}
[[ -z ${2:-} ]] || node_arg "$cmd" "$2"
case "$cmd" in
up) cmd_up ;;
down) cmd_down ;;
stop) cmd_stop "${2:-}" ;;
start) cmd_start "${2:-}" ;;
restart)
	cmd_stop "${2:-}"
	cmd_start "${2:-}"
	;;
kill | pause | resume | pid)
	node_arg "$cmd" "${2:-}"
	case "$cmd" in
	kill) signal_node KILL "$2" ;;
	pause) signal_node STOP "$2" ;;
	resume) signal_node CONT "$2" ;;
	pid)
		select_node "$2"
		running_pid || exit 1
		;;
	esac
	;;
status) cmd_status ;;
brokers)
	if [[ -n ${2:-} ]]; then
		echo "$HOST:$(node_port "$2")"
	else
		echo "$BOOTSTRAP"
	fi
	;;
*)
	echo "usage: $0 up|down|status|brokers [NODE] | stop|start|restart [NODE] | kill|pause|resume|pid NODE   (BROKERS=N for N nodes)" >&2
	exit 2
	;;
esac
