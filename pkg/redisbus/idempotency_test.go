package redisbus

import (
	"fmt"
	"testing"
	"time"

	"notify/pkg/redistest"
)

// newRecords is the records of a fresh key prefix, and the name of the
// record of publisher "svc" and key "k".
func newRecords(t *testing.T, r *redistest.Server) (*IdempotencyRecords, Keys, string) {
	t.Helper()
	keys := Keys{Prefix: fmt.Sprintf("t%d:", time.Now().UnixNano())}
	return NewIdempotencyRecords(r.Client(), keys), keys, keys.Idempotency("svc", "k")
}

// wantHourRecord checks that name holds value and expires within the hour
// a claim gave it.
func wantHourRecord(t *testing.T, r *redistest.Server, name, value string) {
	t.Helper()
	if v, _ := r.Client().Get(t.Context(), name).Result(); v != value {
		t.Fatalf("stored %q, want %q", v, value)
	}
	if ttl := r.Client().PTTL(t.Context(), name).Val(); ttl <= time.Hour-time.Minute || ttl > time.Hour {
		t.Fatalf("TTL %s, want the claim's hour", ttl)
	}
}

// A claim stores the record with its TTL; a second one gets the first
// record back and changes nothing.
func TestRecordsClaim(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	recs, _, name := newRecords(t, r)
	ctx := t.Context()
	held, claimed, err := recs.Claim(ctx, "svc", "k", []byte("first"), time.Hour)
	if err != nil || !claimed || held != nil {
		t.Fatalf("first claim: %q %v %v", held, claimed, err)
	}
	held, claimed, err = recs.Claim(ctx, "svc", "k", []byte("second"), time.Minute)
	if err != nil || claimed || string(held) != "first" {
		t.Fatalf("second claim: %q %v %v, want the first record", held, claimed, err)
	}
	wantHourRecord(t, r, name, "first")
	// Another publisher, or another key, is another record.
	for _, pk := range [][2]string{{"other", "k"}, {"svc", "k2"}} {
		if _, claimed, err := recs.Claim(ctx, pk[0], pk[1], []byte("x"), time.Hour); err != nil || !claimed {
			t.Fatalf("claim %v: %v %v", pk, claimed, err)
		}
	}
}

// Replace swaps only the record the caller read, and keeps its expiry.
func TestRecordsReplace(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	recs, _, name := newRecords(t, r)
	ctx := t.Context()
	if ok, err := recs.Replace(ctx, "svc", "k", []byte("a"), []byte("b")); err != nil || ok {
		t.Fatalf("replace without a record: %v %v", ok, err)
	}
	if n := r.Client().Exists(ctx, name).Val(); n != 0 {
		t.Fatal("replace created a record")
	}
	if _, _, err := recs.Claim(ctx, "svc", "k", []byte("a"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if ok, err := recs.Replace(ctx, "svc", "k", []byte("stale"), []byte("b")); err != nil || ok {
		t.Fatalf("replace of another record: %v %v", ok, err)
	}
	if ok, err := recs.Replace(ctx, "svc", "k", []byte("a"), []byte("b")); err != nil || !ok {
		t.Fatalf("replace: %v %v", ok, err)
	}
	if ok, err := recs.Replace(ctx, "svc", "k", []byte("a"), []byte("c")); err != nil || ok {
		t.Fatalf("second replace of the same record: %v %v", ok, err)
	}
	wantHourRecord(t, r, name, "b")
}

// Update overwrites a record and keeps its expiry, and does not recreate
// one that has expired.
func TestRecordsUpdate(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	recs, keys, name := newRecords(t, r)
	ctx := t.Context()
	if _, _, err := recs.Claim(ctx, "svc", "k", []byte("a"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := recs.Update(ctx, "svc", "k", []byte("done")); err != nil {
		t.Fatal(err)
	}
	wantHourRecord(t, r, name, "done")
	if err := recs.Update(ctx, "svc", "gone", []byte("done")); err != nil {
		t.Fatal(err)
	}
	if n := r.Client().Exists(ctx, keys.Idempotency("svc", "gone")).Val(); n != 0 {
		t.Fatal("update created a record")
	}
}

// A record expires after its TTL; the key can then be claimed again.
func TestRecordsExpire(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	recs, _, name := newRecords(t, r)
	ctx := t.Context()
	if _, _, err := recs.Claim(ctx, "svc", "k", []byte("a"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); r.Client().Exists(ctx, name).Val() != 0; {
		if time.Now().After(deadline) {
			t.Fatal("record still there 5 s after its 50 ms TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held, claimed, err := recs.Claim(ctx, "svc", "k", []byte("b"), time.Hour); err != nil || !claimed || held != nil {
		t.Fatalf("claim after expiry: %q %v %v", held, claimed, err)
	}
}

// Without Redis every step fails with an error, none claims or replaces.
func TestRecordsRedisDown(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	recs, _, _ := newRecords(t, r)
	r.Kill()
	ctx := t.Context()
	if _, claimed, err := recs.Claim(ctx, "svc", "k", []byte("a"), time.Hour); err == nil || claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if ok, err := recs.Replace(ctx, "svc", "k", []byte("a"), []byte("b")); err == nil || ok {
		t.Fatalf("replace: %v %v", ok, err)
	}
	if err := recs.Update(ctx, "svc", "k", []byte("b")); err == nil {
		t.Fatal("update: no error")
	}
}
