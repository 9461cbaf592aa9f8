package signaling

import "testing"

// TestSendQueue: FIFO order, the limit (a full queue refuses, which makes
// the connection a slow client), the ready signal when it becomes non-empty,
// and that a drained burst lets its memory go.
func TestSendQueue(t *testing.T) {
	q := newSendQueue(300)
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	for i := 0; i < 300; i++ {
		if !q.push(&outMsg{data: []byte{byte(i)}}) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if q.push(&outMsg{}) {
		t.Fatal("push over the limit accepted")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no ready signal after the first push")
	}
	for i := 0; i < 300; i++ {
		m, ok := q.pop()
		if !ok || m.data[0] != byte(i) {
			t.Fatalf("pop %d: %v %v", i, ok, m)
		}
		if i == 149 && !q.push(&outMsg{data: []byte{7}}) { // room again once drained a little
			t.Fatal("push refused after pops")
		}
	}
	if m, ok := q.pop(); !ok || m.data[0] != 7 {
		t.Fatalf("the message pushed mid-drain: %v %v", ok, m)
	}
	if q.len() != 0 || q.items != nil {
		t.Fatalf("drained queue keeps %d messages, array of %d", q.len(), cap(q.items))
	}
	if !q.push(&outMsg{}) {
		t.Fatal("push after drain refused")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no ready signal when the queue became non-empty again")
	}
}

// TestSendQueueSteadyBacklog: a consumer that never quite catches up keeps
// the array bounded by the backlog, not by everything ever sent.
func TestSendQueueSteadyBacklog(t *testing.T) {
	q := newSendQueue(1000)
	for i := 0; i < 100; i++ {
		q.push(&outMsg{})
	}
	for i := 0; i < 100_000; i++ {
		if !q.push(&outMsg{}) {
			t.Fatal("refused")
		}
		if _, ok := q.pop(); !ok {
			t.Fatal("empty")
		}
	}
	if q.len() != 100 || cap(q.items) > 1024 {
		t.Fatalf("backlog %d in an array of %d", q.len(), cap(q.items))
	}
}
