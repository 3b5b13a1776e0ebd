package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a master, one replica and three sentinels watching them.
type Sentinel struct {
	Master, Replica *Server
	Sentinels       []*Server
	Name            string // the master's name in Sentinel
	// Password protects master and replica, SentinelPassword the
	// sentinels; empty: none.
	Password, SentinelPassword string
}

// SentinelAddrs is REDIS_SENTINEL_ADDRS.
func (s *Sentinel) SentinelAddrs() string {
	addrs := make([]string, len(s.Sentinels))
	for i, x := range s.Sentinels {
		addrs[i] = x.Addr()
	}
	return strings.Join(addrs, ",")
}

// Env is the services' environment for this topology.
func (s *Sentinel) Env() map[string]string {
	env := map[string]string{"REDIS_SENTINEL_ADDRS": s.SentinelAddrs(), "REDIS_SENTINEL_MASTER": s.Name}
	if s.Password != "" {
		env["REDIS_PASSWORD"] = s.Password
	}
	if s.SentinelPassword != "" {
		env["REDIS_SENTINEL_PASSWORD"] = s.SentinelPassword
	}
	return env
}

// StartSentinel starts the topology with quick failure detection (1 s) and
// waits until every sentinel knows the replica and the other sentinels.
func StartSentinel(t testing.TB, opts ...Option) *Sentinel {
	t.Helper()
	return StartSentinelAuth(t, "", "", opts...)
}

// StartSentinelAuth is StartSentinel with passwords: password on master and
// replica (requirepass, masterauth; the sentinels' auth-pass), and
// sentinelPassword on the sentinels (requirepass, which they also use with
// each other). An empty password leaves that side open.
func StartSentinelAuth(t testing.TB, password, sentinelPassword string, opts ...Option) *Sentinel {
	t.Helper()
	st := &Sentinel{Name: "notify-master", Password: password, SentinelPassword: sentinelPassword}
	if password != "" {
		opts = append(opts, WithPassword(password))
	}
	st.Master = Start(t, opts...)
	st.Replica = Start(t, append(opts, WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(st.Master.Port)))...)
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 5000\nsentinel parallel-syncs %[1]s 1\n",
		st.Name, st.Master.Port)
	if password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", st.Name, password)
	}
	if sentinelPassword != "" {
		conf += fmt.Sprintf("requirepass %s\n", sentinelPassword)
	}
	for range 3 {
		st.Sentinels = append(st.Sentinels, Start(t, func(s *Server) { s.sentinel, s.password = conf, sentinelPassword }))
	}
	waitTopology(t, 20*time.Second, "sentinels see the replica and each other", func(ctx context.Context) bool {
		for _, x := range st.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: x.Addr(), Password: sentinelPassword})
			m, err := sc.Master(ctx, st.Name).Result()
			sc.Close()
			if err != nil || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return false
			}
		}
		return true
	})
	return st
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Masters []*Server
}

// Addrs is REDIS_CLUSTER_ADDRS.
func (c *Cluster) Addrs() string {
	addrs := make([]string, len(c.Masters))
	for i, m := range c.Masters {
		addrs[i] = m.Addr()
	}
	return strings.Join(addrs, ",")
}

// StartCluster starts n masters, splits the 16384 slots evenly between
// them and waits until the cluster is ok on every node.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range n {
		c.Masters = append(c.Masters, Start(t, append(opts, WithArgs("--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, m := range c.Masters {
		cl := m.Client()
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: add slots %d-%d: %v", lo, hi, err)
		}
		if i > 0 {
			if err := c.Masters[0].Client().ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(m.Port)).Err(); err != nil {
				t.Fatalf("redistest: cluster meet: %v", err)
			}
		}
	}
	c.WaitOK(t)
	return c
}

// WaitOK waits until every node reports cluster_state:ok.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	waitTopology(t, 30*time.Second, "cluster_state:ok on every node", func(ctx context.Context) bool {
		for _, m := range c.Masters {
			info, err := m.Client().ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Masters))) {
				return false
			}
		}
		return true
	})
}

func waitTopology(t testing.TB, within time.Duration, what string, ok func(context.Context) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		done := ok(ctx)
		cancel()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
