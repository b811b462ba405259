package vaulttest

import (
	"context"
	"testing"
	"time"
)

// The cluster is what the HA tests rely on: three voters over TLS, a new
// leader after the old one is killed, the old one back as a follower, and
// seal/unseal of the
// active node.
func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	ctx := context.Background()
	if err := c.Fixtures(t).PutDevice(ctx, "a1Cluster", "dev-1", "s1"); err != nil {
		t.Fatal(err)
	}
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	leader.Kill()
	next, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatal("the killed node is still the leader")
	}
	t.Logf("new leader node %d after %s", next.Index, time.Since(start))
	// A standby forwards to the new leader; the data survived.
	for _, nd := range c.Nodes {
		if !nd.Running() {
			continue
		}
		s, err := nd.Client.KVv2("iot").Get(ctx, "devices/a1Cluster/dev-1")
		if err != nil || s.Data["deviceSecret"] != "s1" {
			t.Errorf("read through node %d after leader loss: %v", nd.Index, err)
		}
	}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	if leader.Sealed() {
		t.Error("restarted node still sealed after Start")
	}
	// Vault seals only its active node ("cannot seal when in standby").
	sb, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Seal(); err != nil {
		t.Fatal(err)
	}
	if !sb.Sealed() {
		t.Errorf("node %d not sealed after Seal", sb.Index)
	}
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}
	if sb.Sealed() {
		t.Errorf("node %d still sealed after Heal", sb.Index)
	}
}
