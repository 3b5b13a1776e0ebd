package redisbus

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"notify/pkg/notification"
	"notify/pkg/redistest"
)

// BenchmarkPublishBatch publishes batches of 100 notifications, with and
// without a state key, and reports Redis's own CPU per notification
// (INFO cpu, user+sys): the cost a key adds to the publish script.
//
//	go test -run '^$' -bench PublishBatch -benchtime 300x ./pkg/redisbus/
func BenchmarkPublishBatch(b *testing.B) {
	for _, mode := range []string{"unkeyed", "keyed"} {
		b.Run(mode, func(b *testing.B) {
			r := redistest.Start(b)
			keys := Keys{Prefix: "bench:"}
			pub := NewPublisher(r.Client(), keys, PublisherConfig{HistoryMaxLen: 1000, HistoryTTL: time.Hour, StateMaxKeys: 10000})
			env := []byte(`{"id":"0193a5b2-7c1e-7d3f-9a4b-5c6d7e8f9a0b","topic":"device:00","type":"device.status","time":"2026-12-05T10:00:00Z","key":"sensor-000","data":{"online":true,"battery":87,"firmware":"1.4.2"}}`)
			const batch = 100
			items := make([]notification.Event, batch)
			n := 0
			next := func() {
				for i := range items {
					items[i] = notification.Event{Topic: fmt.Sprintf("device:%02d", i%20), Body: notification.EncodeBody("device.status", env), Link: uint32(n + 1)}
					if mode == "keyed" {
						items[i].Key = fmt.Sprintf("sensor-%03d", n%500)
					}
					n++
				}
			}
			next()
			if _, err := pub.Publish(b.Context(), items); err != nil { // loads the script
				b.Fatal(err)
			}
			before := redisCPU(b, r.Client())
			b.ResetTimer()
			for range b.N {
				next()
				if _, err := pub.Publish(b.Context(), items); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			used := redisCPU(b, r.Client()) - before
			b.ReportMetric(used.Seconds()*1e6/float64(b.N*batch), "redis-µs/notification")
		})
	}
}

// redisCPU is the CPU time Redis has used, from INFO cpu.
func redisCPU(b *testing.B, c *redis.Client) time.Duration {
	info, err := c.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
