package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// nodeLockKey is the advisory lock a node's active process holds ("opscentr").
const nodeLockKey int64 = 0x6f707363656e7472

// ErrSuperseded means another process became active while this one had lost
// its lock connection: it must stop acting as active.
var ErrSuperseded = errors.New("another process took over the node")

// NodeLock is the advisory lock that says which process of a standby pair is
// active. It lives on one dedicated connection, outside the pool: the lock is a
// session lock, so PostgreSQL releases it when that connection closes, which a
// dead process's kernel does at once.
type NodeLock struct {
	dsn  string
	conn *pgx.Conn
	term int64 // the term this process won (0: never active)
	held bool
}

// NewNodeLock prepares the lock; nothing is connected until TryAcquire.
func NewNodeLock(dsn string) *NodeLock { return &NodeLock{dsn: dsn} }

// Term is the term this process won, 0 before.
func (l *NodeLock) Term() int64 { return l.term }

// Held says whether the lock was held at the last call.
func (l *NodeLock) Held() bool { return l.held }

// TryAcquire takes the lock when it is free and records url as the active
// process under a new term. It returns false while another process holds it.
func (l *NodeLock) TryAcquire(ctx context.Context, url string) (bool, error) {
	ok, err := l.TryLock(ctx)
	if err != nil || !ok {
		return false, err
	}
	return true, l.Claim(ctx, url)
}

// TryLock takes the lock when it is free, without claiming the node yet: the
// caller may first check that the last active process is really gone, and
// Release the lock if it is not.
func (l *NodeLock) TryLock(ctx context.Context) (bool, error) {
	if err := l.connect(ctx); err != nil {
		return false, err
	}
	return l.tryLock(ctx)
}

// Claim records url as the active process under a new term; the lock must be
// held (TryLock).
func (l *NodeLock) Claim(ctx context.Context, url string) error {
	if l.conn == nil {
		return errors.New("node lock: claim without the lock")
	}
	err := l.conn.QueryRow(ctx, `INSERT INTO node_active (id, term, url, since) VALUES (1, 1, $1, now())
		ON CONFLICT (id) DO UPDATE SET term = node_active.term + 1, url = EXCLUDED.url, since = now()
		RETURNING term`, url).Scan(&l.term)
	if err != nil {
		l.drop(ctx)
		return fmt.Errorf("record active node: %w", err)
	}
	l.held = true
	return nil
}

// Release gives the lock up without claiming the node (after TryLock).
func (l *NodeLock) Release(ctx context.Context) { l.drop(ctx) }

// Check verifies the lock connection is alive. After an error the lock must be
// taken as lost: PostgreSQL ends the session, and the lock with it.
func (l *NodeLock) Check(ctx context.Context) error {
	if l.conn == nil || !l.held {
		return errors.New("node lock not held")
	}
	if err := l.conn.Ping(ctx); err != nil {
		l.drop(ctx)
		return fmt.Errorf("node lock connection: %w", err)
	}
	return nil
}

// Reacquire takes the lock back after its connection was lost. It succeeds only
// when nobody became active in between (the term is still this process's);
// otherwise it returns ErrSuperseded and leaves the lock to the other process.
func (l *NodeLock) Reacquire(ctx context.Context) error {
	if l.term == 0 {
		return errors.New("node lock: never held")
	}
	if err := l.connect(ctx); err != nil {
		return err
	}
	ok, err := l.tryLock(ctx)
	if err != nil {
		return err
	}
	var term int64
	if err := l.conn.QueryRow(ctx, `SELECT term FROM node_active WHERE id = 1`).Scan(&term); err != nil {
		l.drop(ctx)
		return fmt.Errorf("read active node: %w", err)
	}
	if term != l.term {
		l.drop(ctx) // releases the lock with the session, if it was taken
		return ErrSuperseded
	}
	if !ok {
		// Held, yet nobody took over: most likely this process's old session,
		// which PostgreSQL has not ended yet. Try again later.
		return errors.New("node lock busy (the old session not ended yet?); the term is still this process's")
	}
	l.held = true
	return nil
}

// Close releases the lock (closing its connection).
func (l *NodeLock) Close(ctx context.Context) { l.drop(ctx) }

func (l *NodeLock) connect(ctx context.Context) error {
	if l.conn != nil && !l.conn.IsClosed() {
		return nil
	}
	c, err := pgx.Connect(ctx, l.dsn)
	if err != nil {
		return fmt.Errorf("node lock: connect: %w", err)
	}
	// A process that dies closes its socket and PostgreSQL ends the session at
	// once; a machine that dies, or is cut off, closes nothing. These make the
	// server drop such a silent session (and the lock) within about 6 s instead
	// of the kernel's default of two hours. Unix sockets ignore them; an older
	// server without one of them still works, only slower to notice.
	for _, set := range []string{"SET tcp_keepalives_idle = 3", "SET tcp_keepalives_interval = 1",
		"SET tcp_keepalives_count = 3", "SET tcp_user_timeout = 6000"} {
		_, _ = c.Exec(ctx, set)
	}
	l.conn = c
	return nil
}

func (l *NodeLock) tryLock(ctx context.Context) (bool, error) {
	var ok bool
	if err := l.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, nodeLockKey).Scan(&ok); err != nil {
		l.drop(ctx)
		return false, fmt.Errorf("node lock: %w", err)
	}
	return ok, nil
}

func (l *NodeLock) drop(ctx context.Context) {
	l.held = false
	if l.conn != nil {
		_ = l.conn.Close(ctx)
		l.conn = nil
	}
}
