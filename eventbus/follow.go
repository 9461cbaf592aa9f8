package eventbus

import (
	"context"
	"fmt"
	"time"

	"github.com/opscenter/opscenter/store"
)

// FromNow, as Follow's after, starts at the events committed from the call on.
const FromNow int64 = -1

// backfillPage is how many events one store read returns while catching up.
const backfillPage = 500

// Follow hands fn every event committed after the id after, exactly once and in id
// order, until ctx ends. It catches up from the store, then follows the hub live.
// When the hub cuts its subscription off (fn was too slow) or the store is away, it
// subscribes again and resumes from the last id it handed out, so an event in the
// gap (a revoked link, a directive) is never lost. fn runs on Follow's goroutine.
func (h *Hub) Follow(ctx context.Context, after int64, buffer int, fn func(store.Event)) error {
	// A backfill taken before the hub knows its start could end below it, and the
	// events in between would come neither from the store nor live.
	if err := h.waitReady(ctx); err != nil {
		return err
	}
	backoff := 100 * time.Millisecond
	for {
		sub := h.Subscribe(buffer)
		var err error
		if after < 0 {
			after, err = h.Position(ctx)
		}
		if err == nil {
			err = h.follow(ctx, sub, &after, fn)
		}
		sub.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.log.Warn("event follower: resuming", "after", after, "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		if err == nil {
			backoff = 100 * time.Millisecond // cut off for being slow: not the store's fault
		} else {
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}

// Position is the id of the last event the hub handed out. It waits until the hub
// has read the chain head, since events before that are not handed out live: a
// reader that follows from the position then misses nothing later.
func (h *Hub) Position(ctx context.Context) (int64, error) {
	if err := h.waitReady(ctx); err != nil {
		return FromNow, err
	}
	return h.last.Load(), nil
}

func (h *Hub) waitReady(ctx context.Context) error {
	select {
	case <-h.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("event hub not started: %w", ctx.Err())
	}
}

// follow catches up from *after and then reads sub until it is closed. It returns
// nil when the subscription was cut off, and the store's error when a backfill fails.
func (h *Hub) follow(ctx context.Context, sub *Sub, after *int64, fn func(store.Event)) error {
	if err := h.backfill(ctx, after, 0, fn); err != nil {
		return err
	}
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			if e.ID <= *after {
				continue // already handed out by the backfill
			}
			if e.ID > *after+1 {
				// Ids are gap-free: anything between is in the store.
				if err := h.backfill(ctx, after, e.ID-1, fn); err != nil {
					return err
				}
			}
			fn(e)
			*after = e.ID
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// backfill hands fn the stored events after *after, up to and including upTo (0: all).
func (h *Hub) backfill(ctx context.Context, after *int64, upTo int64, fn func(store.Event)) error {
	for {
		evs, err := h.src.EventsAfter(ctx, *after, backfillPage)
		if err != nil {
			return fmt.Errorf("backfill after %d: %w", *after, err)
		}
		for _, e := range evs {
			if upTo > 0 && e.ID > upTo {
				return nil
			}
			fn(e)
			*after = e.ID
		}
		if len(evs) < backfillPage {
			return nil
		}
	}
}
