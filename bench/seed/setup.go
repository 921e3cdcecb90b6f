package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// connector is the Spark Kafka connector the seed's job loads.
const connector = "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0"

// depPlugin is the maven-dependency-plugin used to fetch it (the version
// scripts/kafka-local.sh uses; Maven's default 2.8 also tries to fetch
// the connector's test jars and fails).
const depPlugin = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:get"

// seedEnv is the seed stack's Python environment and Spark settings.
type seedEnv struct {
	python      string // the venv's interpreter
	ivySettings string // Ivy settings resolving from ~/.m2/repository only
	ivyDir      string // Spark's Ivy cache and retrieved jars
}

// prepareSeed makes the venv (pip install -r requirements.txt, once per
// requirements file content), fetches the connector into the local Maven
// repository with mvn and writes the Ivy settings Spark resolves it with.
func prepareSeed(root, cacheDir string) (*seedEnv, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	reqFile := filepath.Join(root, "bench", "seed", "requirements.txt")
	req, err := os.ReadFile(reqFile)
	if err != nil {
		return nil, err
	}
	venv := filepath.Join(cacheDir, "venv")
	env := &seedEnv{python: filepath.Join(venv, "bin", "python")}
	marker := filepath.Join(venv, ".requirements")
	if have, err := os.ReadFile(marker); err != nil || !bytes.Equal(have, req) {
		py, err := exec.LookPath("python3")
		if err != nil {
			return nil, errors.New("python3 not found: the seed stack needs Python 3.10+")
		}
		logf("creating the seed's venv in %s (pyspark, Flask, kafka-python; a few minutes the first time)...", venv)
		if err := runCmd(py, "-m", "venv", venv); err != nil {
			return nil, err
		}
		if err := runCmd(filepath.Join(venv, "bin", "pip"), "install", "-q", "-r", reqFile); err != nil {
			return nil, err
		}
		if err := os.WriteFile(marker, req, 0o644); err != nil {
			return nil, err
		}
	}

	home, err := os.UserHomeDir()
	if err != nil {
		return nil, err
	}
	m2 := filepath.Join(home, ".m2", "repository")
	parts := strings.Split(connector, ":")
	jar := filepath.Join(append([]string{m2}, append(strings.Split(parts[0], "."), parts[1], parts[2],
		parts[1]+"-"+parts[2]+".jar")...)...)
	if _, err := os.Stat(jar); err != nil {
		if _, err := exec.LookPath("mvn"); err != nil {
			return nil, errors.New("mvn not found: the Spark Kafka connector is fetched with Maven")
		}
		logf("fetching %s into %s with mvn...", connector, m2)
		if err := runCmd("mvn", "-q", "-B", depPlugin, "-Dartifact="+connector); err != nil {
			return nil, err
		}
	}
	env.ivySettings = filepath.Join(cacheDir, "ivysettings.xml")
	env.ivyDir = filepath.Join(cacheDir, "ivy")
	settings := fmt.Sprintf(`<ivysettings>
  <!-- written by bench/seed: Spark resolves %s from the local Maven repository only -->
  <settings defaultResolver="local-m2"/>
  <resolvers>
    <ibiblio name="local-m2" m2compatible="true" root="file://%s"/>
  </resolvers>
</ivysettings>
`, connector, m2)
	if err := os.WriteFile(env.ivySettings, []byte(settings), 0o644); err != nil {
		return nil, err
	}
	return env, nil
}

// runCmd runs a setup command with its output on stderr.
func runCmd(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// startKafka starts a broker of this benchmark's own with
// scripts/kafka-local.sh on port (its controller on port+1, its state in
// stateDir) and returns its bootstrap address and a function that stops it
// again (nil when it already ran: then it is left running).
func startKafka(root string, port int, stateDir string) (string, func(), error) {
	env := append(os.Environ(),
		fmt.Sprintf("KAFKA_PORT=%d", port), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", port+1),
		"KAFKA_STATE_DIR="+stateDir, "BROKERS=1")
	script := filepath.Join(root, "scripts", "kafka-local.sh")
	status := exec.Command("bash", script, "status")
	status.Env = env
	running := status.Run() == nil
	up := exec.Command("bash", script, "up")
	up.Env, up.Stderr = env, os.Stderr
	out, err := up.Output()
	if err != nil {
		return "", nil, fmt.Errorf("scripts/kafka-local.sh up (port %d): %w", port, err)
	}
	addr := ""
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "KAFKA_BROKERS="); ok {
			addr = v
		}
	}
	if addr == "" {
		return "", nil, errors.New("scripts/kafka-local.sh up printed no KAFKA_BROKERS= line")
	}
	if running {
		return addr, nil, nil
	}
	return addr, func() {
		down := exec.Command("bash", script, "down")
		down.Env, down.Stderr = env, os.Stderr
		if err := down.Run(); err != nil {
			logf("stopping the benchmark's broker: %v", err)
		}
	}, nil
}

// createTopics creates topics with partitions partitions (replication 1,
// retention as the broker's default).
func createTopics(brokers []string, partitions int, topics ...string) error {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = "emostream-bench-seed"
	sc.Net.DialTimeout = 5 * time.Second
	admin, err := sarama.NewClusterAdmin(brokers, sc)
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, t := range topics {
		err := admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: int32(partitions), ReplicationFactor: 1}, false)
		if err != nil {
			return fmt.Errorf("creating topic %s: %w", t, err)
		}
	}
	return nil
}
