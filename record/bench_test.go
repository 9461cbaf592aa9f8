package record

import (
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// synthVP8 returns packets of a made-up VP8 stream (30 fps, a keyframe each
// second, about 1 Mbit/s): the recorder does not decode, so random bytes
// behind a valid keyframe header are enough.
func synthVP8(frames int) []*rtp.Packet {
	rng := rand.New(rand.NewSource(1))
	pz := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(0), 90000)
	var out []*rtp.Packet
	for i := 0; i < frames; i++ {
		n := 3000
		if i%30 == 0 {
			n = 20000
		}
		fr := make([]byte, n)
		rng.Read(fr)
		if i%30 == 0 {
			copy(fr, []byte{0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01}) // 640x360
		} else {
			fr[0] |= 1
		}
		out = append(out, pz.Packetize(fr, 3000)...)
	}
	return out
}

// BenchmarkWriteVideoRTP measures what the caller pays per packet: the copy
// into a pooled slot and the queue send. The queue is drained by the
// benchmark itself, so only the write path is timed.
func BenchmarkWriteVideoRTP(b *testing.B) {
	pkts := synthVP8(60)
	cfg := defaults()
	r := &Recorder{cfg: cfg, free: make(chan *slot, cfg.queueSize), queue: make(chan *slot, cfg.queueSize+1)}
	for i := 0; i < cfg.queueSize; i++ {
		r.free <- &slot{buf: make([]byte, 0, cfg.maxPayload)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.WriteVideoRTP(pkts[i%len(pkts)]); err != nil {
			b.Fatal(err)
		}
		r.free <- <-r.queue
	}
}

// BenchmarkRecordPipeline measures the whole recorder per packet: write,
// reorder, reassemble, mux and write to a file (no fsync). The recorder's
// loop runs on the benchmark's goroutine, so no time goes to waiting for it;
// ebml-go's own goroutine still runs. Allocations include both.
func BenchmarkRecordPipeline(b *testing.B) {
	pkts := synthVP8(300)
	span := pkts[len(pkts)-1].Timestamp - pkts[0].Timestamp + 3000
	r, err := newRecorder(filepath.Join(b.TempDir(), "bench.webm"), WithSync(false))
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, p := range pkts {
		bytes += int64(len(p.Payload))
	}
	b.SetBytes(bytes / int64(len(pkts)))
	b.ReportAllocs()
	b.ResetTimer()
	var q rtp.Packet
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		round := uint32(i / len(pkts))
		q.Header = p.Header
		q.Payload = p.Payload
		q.SequenceNumber = p.SequenceNumber + uint16(round*uint32(len(pkts)))
		q.Timestamp = p.Timestamp + round*span
		if err := r.WriteVideoRTP(&q); err != nil {
			b.Fatal(err)
		}
		r.push(<-r.queue)
	}
	b.StopTimer() // finish hashes the whole file
	err = r.finish()
	if err == ErrNoMedia && b.N < len(pkts) {
		return // too few packets for a keyframe
	}
	if err != nil {
		b.Fatal(err)
	}
	if st := r.Stats(); st.QueueDrops != 0 || st.LostPackets != 0 {
		b.Fatalf("stats %+v", st)
	}
}
