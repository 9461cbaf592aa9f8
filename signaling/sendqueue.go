package signaling

import "sync"

// sendQueue is a connection's outgoing queue. It holds up to limit messages
// but only takes memory for what is queued: a console sees bursts (every
// endpoint rejoining after a restart is hundreds of presence messages), and
// a preallocated channel big enough for those would cost every idle
// endpoint connection the same. The connection's writer is its only reader.
type sendQueue struct {
	mu    sync.Mutex
	items []*outMsg
	head  int
	limit int
	ready chan struct{} // signalled when the queue becomes non-empty
}

func newSendQueue(limit int) *sendQueue {
	return &sendQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push queues m; false if the queue is full (a slow client).
func (q *sendQueue) push(m *outMsg) bool {
	q.mu.Lock()
	n := len(q.items) - q.head
	if n >= q.limit {
		q.mu.Unlock()
		return false
	}
	if q.head > 64 && q.head > n { // a queue that never drains must not keep its dead prefix
		copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	if n == 0 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// pop takes the oldest message without waiting.
func (q *sendQueue) pop() (*outMsg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return nil, false
	}
	m := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) { // empty: start over, and let a burst's array go
		q.head = 0
		if cap(q.items) > 64 {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
	}
	return m, true
}

// len is the number of queued messages.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
