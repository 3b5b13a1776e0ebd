package sse

import "testing"

func TestAppendEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id, event, data, want string
	}{
		{"plain", "c1", "task.assigned", `{"a":1}`, "id: c1\nevent: task.assigned\ndata: {\"a\":1}\n\n"},
		{"newlines in data", "c2", "t", "a\nb\r\nc\rd", "id: c2\nevent: t\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"injection in id and event", "x\ndata: evil", "t\r\nid: 9", "{}", "id: xdata: evil\nevent: tid: 9\ndata: {}\n\n"},
		{"nul in id", "a\x00b", "t", "", "id: ab\nevent: t\ndata: \n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := string(AppendEvent(AppendID(nil, tc.id), tc.event, []byte(tc.data)))
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAppendCommentAndRetry(t *testing.T) {
	t.Parallel()
	if got := string(AppendComment(nil, "")); got != ":\n\n" {
		t.Fatalf("comment: %q", got)
	}
	if got := string(AppendComment(nil, "hi\nevent: x")); got != ": hievent: x\n\n" {
		t.Fatalf("comment with newline: %q", got)
	}
	if got := string(AppendRetry(nil, 3000)); got != "retry: 3000\n\n" {
		t.Fatalf("retry: %q", got)
	}
}
