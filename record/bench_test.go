package record

import (
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	synthmedia "github.com/opscenter/opscenter/synth/media"
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

// topLayer is loadgen's program top layer (loadgen.ProgramLayers "f":
// 1280x720, 1 Mbit/s, 30 fps, a keyframe every 10 s and on request) and its
// Opus-sized audio (100-byte payloads, 50 packets/s), as synth/media makes
// them for the load generator.
func topLayer() (*synthmedia.Video, *synthmedia.Audio) {
	v := synthmedia.NewVideo(synthmedia.VideoConfig{Code: "22", RID: "f", Width: 1280, Height: 720, FPS: 30,
		Bitrate: 1_000_000, KeyframeInterval: 10 * time.Second, SSRC: 1002})
	a := synthmedia.NewAudio(synthmedia.AudioConfig{Code: "22", SSRC: 2000})
	return v, a
}

// streamPacket is one packet of a pre-generated stream, in arrival order.
type streamPacket struct {
	kind Kind
	sr   bool // a sender report: ntp, p.Timestamp
	ntp  uint64
	p    rtp.Packet
}

// topLayerStream generates d of the top layer and its audio in time order,
// with a sender report per track every 5 s; payloads are copied.
func topLayerStream(d time.Duration) (pkts []streamPacket, span [2]uint32, count [2]uint16) {
	v, a := topLayer()
	t0 := time.Date(2021, 5, 23, 6, 30, 0, 0, time.UTC)
	add := func(k Kind) func(p *rtp.Packet) error {
		return func(p *rtp.Packet) error {
			q := streamPacket{kind: k, p: rtp.Packet{Header: p.Header, Payload: append([]byte(nil), p.Payload...)}}
			q.p.Header.Extensions = nil
			pkts = append(pkts, q)
			count[k]++
			return nil
		}
	}
	var vts0, ats0 uint32
	frames, audio := int(d/(time.Second/30)), int(d/(20*time.Millisecond))
	for f, n := 0, 0; f < frames || n < audio; {
		vt := time.Duration(f) * time.Second / 30
		at := time.Duration(n) * 20 * time.Millisecond
		if f < frames && (vt <= at || n >= audio) {
			if vt%(5*time.Second) == 0 && f > 0 {
				pkts = append(pkts, streamPacket{kind: Video, sr: true, ntp: ntpTime(t0.Add(vt)),
					p: rtp.Packet{Header: rtp.Header{Timestamp: vts0 + uint32(f)*3000}}})
			}
			_ = v.NextFrame(t0.Add(vt), add(Video))
			if f == 0 {
				vts0 = pkts[len(pkts)-1].p.Timestamp
			}
			f++
		} else {
			if at%(5*time.Second) == 0 && n > 0 {
				pkts = append(pkts, streamPacket{kind: Audio, sr: true, ntp: ntpTime(t0.Add(at)),
					p: rtp.Packet{Header: rtp.Header{Timestamp: ats0 + uint32(n)*960}}})
			}
			_ = a.NextPacket(t0.Add(at), add(Audio))
			if n == 0 {
				ats0 = pkts[len(pkts)-1].p.Timestamp
			}
			n++
		}
	}
	return pkts, [2]uint32{uint32(frames) * 3000, uint32(audio) * 960}, count
}

func ntpTime(t time.Time) uint64 {
	s := uint64(t.Unix() + 2208988800)
	f := uint64(t.Nanosecond()) << 32 / 1e9
	return s<<32 | f
}

// streamLen is the length of the stream BenchmarkRecorderWritePacket repeats.
const streamLen = 20 * time.Second

// BenchmarkRecorderWritePacket is the recorder's whole per-packet path for
// the program as loadgen publishes it (top-layer VP8 and Opus, keyframes
// every 10 s, so a cluster every 10 s, sender reports every 5 s): the tap's
// WriteVideoRTP/WriteAudioRTP (a copy into a pooled slot) and, inline on
// the benchmark's goroutine, what the recorder's goroutine does with it
// (reorder, VP8 reassembly, timeline, merge of the tracks, WebM muxing into
// the file; no fsync). The stream repeats with shifted sequence numbers and
// timestamps. Run with -benchmem: the target is 0 allocs/op. cpu-ns/op is
// the process's CPU time per packet (every goroutine, GC included).
func BenchmarkRecorderWritePacket(b *testing.B) {
	pkts, span, count := topLayerStream(streamLen)
	r, err := newRecorder(filepath.Join(b.TempDir(), "bench.webm"), WithSync(false))
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, q := range pkts {
		bytes += int64(len(q.p.Payload))
	}
	b.SetBytes(bytes / int64(len(pkts)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	var p rtp.Packet
	for i := 0; i < b.N; i++ {
		q := &pkts[i%len(pkts)]
		round := uint32(i / len(pkts))
		k := q.kind
		ts := q.p.Timestamp + round*span[k]
		if q.sr {
			r.SenderReport(k, q.ntp+uint64(round)*uint64(streamLen/time.Second)<<32, ts)
		} else {
			p.Header = q.p.Header
			p.Payload = q.p.Payload
			p.SequenceNumber = q.p.SequenceNumber + uint16(round)*count[k]
			p.Timestamp = ts
			if k == Video {
				err = r.WriteVideoRTP(&p)
			} else {
				err = r.WriteAudioRTP(&p)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		s := <-r.queue
		if s.sr {
			r.tl.senderReport(s.kind, s.ntp, s.ts)
			r.free <- s
			continue
		}
		r.push(s)
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	err = r.finish()
	if err == ErrNoMedia && b.N < len(pkts) {
		return
	}
	if err != nil {
		b.Fatal(err)
	}
	if st := r.Stats(); st.QueueDrops != 0 || st.LostPackets != 0 || st.DroppedFrames != 0 {
		b.Fatalf("stats %+v", st)
	}
}

// BenchmarkRecordHour records one hour of the program as loadgen publishes it
// (topLayer: 1 Mbit/s VP8 at 1280x720 with a keyframe every 10 s, and
// 100-byte Opus packets at 50/s, sender reports every 5 s) through the whole
// recorder, as fast as it goes, and reports the file's size. Each op is one
// hour of media: run it with -benchtime 1x.
func BenchmarkRecordHour(b *testing.B) {
	for i := 0; i < b.N; i++ {
		info := recordSynth(b, time.Hour)
		b.ReportMetric(float64(info.Size)/1e6, "MB/hour")
		b.ReportMetric(float64(info.Size)*8/info.Duration.Seconds()/1e6, "Mbit/s")
		b.ReportMetric(float64(info.VideoFrames), "video-frames")
		b.ReportMetric(float64(info.AudioFrames), "audio-frames")
		b.ReportMetric(info.Duration.Seconds(), "media-s")
	}
}

// recordSynth writes d of topLayer media, generated in time order, to a file
// and closes it.
func recordSynth(b *testing.B, d time.Duration) Info {
	b.Helper()
	v, a := topLayer()
	r, err := newRecorder(filepath.Join(b.TempDir(), "hour.webm"), WithSync(false),
		WithKeyframeRequest(v.RequestKeyframe)) // as the SFU's PLI would
	if err != nil {
		b.Fatal(err)
	}
	run := func() {
		for {
			select {
			case s := <-r.queue:
				if s.sr {
					r.tl.senderReport(s.kind, s.ntp, s.ts)
					r.free <- s
				} else {
					r.push(s)
				}
			default:
				return
			}
		}
	}
	var vts, ats uint32
	writeVideo := func(p *rtp.Packet) error {
		vts = p.Timestamp
		err := r.WriteVideoRTP(p)
		run()
		return err
	}
	writeAudio := func(p *rtp.Packet) error {
		ats = p.Timestamp
		err := r.WriteAudioRTP(p)
		run()
		return err
	}
	t0 := time.Date(2021, 5, 23, 6, 30, 0, 0, time.UTC)
	frames, audio := int(d/(time.Second/30)), int(d/(20*time.Millisecond))
	for f, n := 0, 0; f < frames || n < audio; {
		vt := time.Duration(f) * time.Second / 30
		at := time.Duration(n) * 20 * time.Millisecond
		if f < frames && (vt <= at || n >= audio) {
			if err := v.NextFrame(t0.Add(vt), writeVideo); err != nil {
				b.Fatal(err)
			}
			if f%150 == 0 {
				r.SenderReport(Video, ntpTime(t0.Add(vt)), vts)
			}
			f++
		} else {
			if err := a.NextPacket(t0.Add(at), writeAudio); err != nil {
				b.Fatal(err)
			}
			if n%250 == 0 {
				r.SenderReport(Audio, ntpTime(t0.Add(at)), ats)
			}
			n++
		}
	}
	run()
	if err := r.finish(); err != nil {
		b.Fatal(err)
	}
	if st := r.Stats(); st.QueueDrops != 0 || st.LostPackets != 0 {
		b.Fatalf("stats %+v", st)
	}
	return r.info
}
