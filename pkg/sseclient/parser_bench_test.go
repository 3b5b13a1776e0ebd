package sseclient

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// benchStream is 100 events shaped like the read API's, with a heartbeat
// every 10 events.
func benchStream() []byte {
	var b bytes.Buffer
	b.WriteString("retry: 3000\n\n")
	for i := range 100 {
		fmt.Fprintf(&b, "id: 01JZ8Q4X7M2K9P3R5T6V8W%04d\nevent: task.assigned\n"+
			`data: {"id":"01JZ8Q4X7M2K9P3R5T6V8W%04d","topic":"seller:42","type":"task.assigned","time":"2026-01-02T15:04:05Z","data":{"taskId":%d}}`+"\n\n", i, i, i)
		if i%10 == 9 {
			b.WriteString(": heartbeat\n\n")
		}
	}
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	data := benchStream()
	for _, comments := range []bool{false, true} {
		b.Run(fmt.Sprintf("comments=%v", comments), func(b *testing.B) {
			r := bytes.NewReader(data)
			p := NewParser(r, &ParseOptions{Comments: comments})
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(data)
				p.Reset(r)
				n := 0
				for {
					_, err := p.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n < 100 {
					b.Fatalf("parsed %d events", n)
				}
			}
		})
	}
}
