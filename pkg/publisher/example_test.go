package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"notify/pkg/publisher"
)

// fakeWriteAPI answers like write-api: 202 for a valid call, a problem for
// a batch whose second item has no topic.
func fakeWriteAPI() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/notifications":
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"id":"01890a5d-ac96-774b-bcce-b302099a8057","topics":["seller:42"]}`)
		case "/v1/notifications/batch":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"type":"urn:notify:problem:invalid-request","title":"Invalid request","status":400,`+
				`"detail":"notifications[1]: topics: want 1 to 100 topics, got 0","index":1}`)
		}
	}))
}

func ExampleClient_Publish() {
	srv := fakeWriteAPI()
	defer srv.Close()

	c := publisher.New(srv.URL, publisher.WithToken("<publisher JWT>"))
	res, err := c.Publish(context.Background(), publisher.Notification{
		Topics: []string{"seller:42"},
		Type:   "task.assigned",
		Data:   map[string]int{"taskId": 7},
	}, publisher.IdempotencyKey("task-7-assigned"))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(res.ID, res.Topics, res.Replayed)
	// Output: 01890a5d-ac96-774b-bcce-b302099a8057 [seller:42] false
}

func ExampleClient_PublishBatch() {
	srv := fakeWriteAPI()
	defer srv.Close()

	c := publisher.New(srv.URL, publisher.WithToken("<publisher JWT>"))
	_, err := c.PublishBatch(context.Background(), []publisher.Notification{
		{Topics: []string{"device:7f3a-01"}, Type: "status", Data: "online"},
		{Type: "status", Data: "offline"}, // no topic
	})
	var pe *publisher.Error
	if errors.As(err, &pe) {
		fmt.Println(pe.Status, pe.Type, *pe.Index)
		fmt.Println(pe.Detail)
	}
	// Output:
	// 400 urn:notify:problem:invalid-request 1
	// notifications[1]: topics: want 1 to 100 topics, got 0
}

func ExampleWithTokenSource() {
	// write-api answers 503 once (Redis unreachable), then accepts; it
	// prints the token each attempt carried.
	attempts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts++
		fmt.Println("attempt", attempts, r.Header.Get("Authorization"))
		if attempts == 1 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"type":"urn:notify:problem:unavailable","title":"Service unavailable","status":503}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"id":"01890a5d-ac96-774b-bcce-b302099a8057","topics":["seller:42"]}`)
	}))
	defer srv.Close()

	// A token source is asked on every attempt, so it can hand out a
	// fresh token when the previous one is about to expire.
	minted := 0
	tokens := func(ctx context.Context) (string, error) {
		minted++
		return fmt.Sprintf("<publisher JWT %d>", minted), nil
	}
	c := publisher.New(srv.URL, publisher.WithTokenSource(tokens),
		publisher.WithRetry(publisher.Retry{MaxAttempts: 3, Initial: time.Millisecond}))
	res, err := c.Publish(context.Background(), publisher.Notification{Topics: []string{"seller:42"}, Type: "task.assigned"})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println(res.ID)
	// Output:
	// attempt 1 Bearer <publisher JWT 1>
	// attempt 2 Bearer <publisher JWT 2>
	// 01890a5d-ac96-774b-bcce-b302099a8057
}
