package record

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRecordVP8Opus records real VP8 and Opus, with reordering, a lost packet
// and sender reports, and checks the file with ffprobe, ffmpeg and the
// package's own reader.
func TestRecordVP8Opus(t *testing.T) {
	video, audio := media(t)
	// The lost packet: the last packet of a frame in the middle of a second,
	// so video resumes at the next keyframe.
	lostFrame := 2*fixtureGOP + 5
	var cut []tpkt
	lost := 0
	for i, p := range video {
		last := i+1 == len(video) || video[i+1].frame != p.frame
		if p.frame == lostFrame && last && lost == 0 {
			lost++
			continue
		}
		cut = append(cut, p)
	}
	pkts := interleave(cut, audio)
	// Reorder: swap neighbours here and there (across tracks and within video).
	for i := 10; i+1 < len(pkts); i += 37 {
		pkts[i], pkts[i+1] = pkts[i+1], pkts[i]
	}

	var asked atomic.Int32
	path := filepath.Join(t.TempDir(), "rec.webm")
	r, err := NewWriter(path, WithKeyframeRequest(func() { asked.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	feed(t, r, pkts)
	info, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("info: %+v", info)

	fed := float64(fixtureSeconds)
	p, dur := ffprobe(t, path)
	var vp8, opus bool
	for _, s := range p.Streams {
		switch s.CodecName {
		case "vp8":
			vp8 = true
			if s.Width != 320 || s.Height != 240 {
				t.Errorf("video is %dx%d, want 320x240", s.Width, s.Height)
			}
		case "opus":
			opus = true
		}
	}
	if !vp8 || !opus {
		t.Errorf("streams %+v: want vp8 and opus", p.Streams)
	}
	if math.Abs(dur-fed) > 0.05*fed {
		t.Errorf("ffprobe duration %.3fs, fed %.0fs", dur, fed)
	}

	fi, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file: %+v", fi)
	if !fi.Cues || fi.CuePoints < fixtureSeconds-1 {
		t.Errorf("cues %v with %d points, want one per keyframe", fi.Cues, fi.CuePoints)
	}
	if math.Abs(fi.Duration.Seconds()-fed) > 0.05*fed {
		t.Errorf("Duration element %v, fed %.0fs", fi.Duration, fed)
	}
	if fi.NeedsRepair() {
		t.Errorf("a closed file needs repair: %+v", fi)
	}

	// Every frame decodes; seeking into the middle lands on a keyframe.
	decodeClean(t, path)
	decodeClean(t, path, "-ss", "3.3")

	// What is missing is exactly the frames from the lost packet's frame to
	// the next keyframe.
	bl := blocks(t, path)
	frames := video[len(video)-1].frame + 1
	wantV := frames - (3*fixtureGOP - lostFrame)
	if got := len(bl[videoTrack]); got != wantV {
		t.Errorf("%d video frames written, want %d of %d", got, wantV, frames)
	}
	if n := countVideoFrames(t, path); n != wantV {
		t.Errorf("ffprobe counts %d video frames, want %d", n, wantV)
	}
	if got := len(bl[audioTrack]); got < len(audio)-2 {
		t.Errorf("%d audio frames written of %d", got, len(audio))
	}
	// Sender reports say both tracks start together.
	if d := bl[audioTrack][0].t - bl[videoTrack][0].t; d < -20 || d > 20 {
		t.Errorf("audio starts %d ms from video", d)
	}

	st := info.Stats
	if st.LostPackets != 1 || st.QueueDrops != 0 {
		t.Errorf("stats %+v: want 1 lost, no queue drops", st)
	}
	if asked.Load() < 2 || st.KeyframeRequests != uint64(asked.Load()) {
		t.Errorf("keyframe asked %d times (stats %d), want at the start and after the loss",
			asked.Load(), st.KeyframeRequests)
	}
	if err := Verify(path, info.SHA256); err != nil {
		t.Error(err)
	}
	if st, _ := os.Stat(path); st.Size() != info.Size {
		t.Errorf("info size %d, file %d", info.Size, st.Size())
	}
	if math.Abs(info.Duration.Seconds()-fed) > 0.05*fed {
		t.Errorf("info duration %v", info.Duration)
	}
	if info.Start.Before(before.Add(-time.Second)) || info.Start.After(time.Now()) {
		t.Errorf("start %v, recording began at %v", info.Start, before)
	}
	if !fi.Start.Equal(info.Start.UTC().Truncate(time.Nanosecond)) && fi.Start.Sub(info.Start).Abs() > time.Microsecond {
		t.Errorf("DateUTC %v, start %v", fi.Start, info.Start)
	}
	// A wrong hash: the first hex digit changed (always to another digit; a
	// fixed prefix would be the right hash once in 256 runs).
	wrong := []byte(info.SHA256)
	wrong[0] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", wrong[0])]
	if err := Verify(path, string(wrong)); err == nil {
		t.Error("Verify accepted a wrong hash")
	}
}

// TestRecordGapResumesAtKeyframe drops one packet in a stretch without
// keyframes and checks that nothing is written until the next keyframe, that
// a keyframe is asked for, and that a hole proven harmless by the PictureID
// (a lost padding packet) costs nothing.
func TestRecordGapResumesAtKeyframe(t *testing.T) {
	video, _ := media(t)
	frames := video[len(video)-1].frame + 1

	run := func(t *testing.T, pkts []tpkt) (map[uint64][]block, Stats, int32, string) {
		var asked atomic.Int32
		path := filepath.Join(t.TempDir(), "gap.webm")
		r, err := NewWriter(path, WithKeyframeRequest(func() { asked.Add(1) }), WithKeyframeInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		feed(t, r, pkts)
		info, err := r.Close()
		if err != nil {
			t.Fatal(err)
		}
		return blocks(t, path), info.Stats, asked.Load(), path
	}

	t.Run("lost", func(t *testing.T) {
		// The first packet of a delta frame of two packets or more.
		count := map[int]int{}
		for _, p := range video {
			count[p.frame]++
		}
		lostFrame := fixtureGOP + 1
		for ; lostFrame < 2*fixtureGOP-1 && count[lostFrame] < 2; lostFrame++ {
		}
		if count[lostFrame] < 2 {
			t.Fatal("no delta frame of two packets in the fixture")
		}
		var pkts []tpkt
		dropped := false
		for _, p := range video {
			if p.frame == lostFrame && !dropped {
				dropped = true
				continue
			}
			pkts = append(pkts, p)
		}
		bl, st, asked, path := run(t, pkts)
		want := frames - (2*fixtureGOP - lostFrame)
		if got := len(bl[videoTrack]); got != want {
			t.Errorf("%d frames written, want %d", got, want)
		}
		// Nothing between the last good frame and the next keyframe.
		for _, b := range bl[videoTrack] {
			ms := b.t - bl[videoTrack][0].t
			if ms >= int64(lostFrame)*1000/fixtureFPS && ms < int64(2*fixtureGOP)*1000/fixtureFPS {
				t.Errorf("frame at %d ms written inside the gap", ms)
			}
			if ms == int64(2*fixtureGOP)*1000/fixtureFPS && !b.key {
				t.Errorf("video resumed at %d ms on a non-keyframe", ms)
			}
		}
		if asked != 2 {
			t.Errorf("keyframe asked %d times, want 2 (start, gap)", asked)
		}
		if st.LostPackets != 1 || st.DroppedFrames != uint64(2*fixtureGOP-lostFrame) {
			t.Errorf("stats %+v", st)
		}
		decodeClean(t, path)
	})

	t.Run("retransmitted", func(t *testing.T) {
		// The gap handler resends the missing packet, as a NACK to the SFU's
		// cache would: nothing is lost.
		bySeq := map[uint16]tpkt{}
		var pkts []tpkt
		for i, p := range video {
			bySeq[p.pkt.SequenceNumber] = p
			if i != len(video)/2 {
				pkts = append(pkts, p)
			}
		}
		var r *Recorder
		var gaps []uint16
		path := filepath.Join(t.TempDir(), "nack.webm")
		r, err := NewWriter(path, WithGapHandler(func(k Kind, first uint16, n int) {
			gaps = append(gaps, first)
			for i := 0; i < n; i++ {
				_ = r.WriteVideoRTP(bySeq[first+uint16(i)].pkt)
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		// In real time the queue is nearly empty when a gap is seen (and a
		// resend after Close is refused), so feed at that pace.
		feedPaced(t, r, pkts, 0)
		info, err := r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(gaps) != 1 || gaps[0] != video[len(video)/2].pkt.SequenceNumber {
			t.Errorf("gaps reported %v", gaps)
		}
		if st := info.Stats; st.LostPackets != 0 || st.DroppedFrames != 0 || info.VideoFrames != uint64(frames) {
			t.Errorf("info %+v", info)
		}
	})

	t.Run("padding", func(t *testing.T) {
		// A sequence number goes missing between two frames, as when a padding
		// packet is lost; the PictureIDs run on, so no frame was lost.
		hole := fixtureGOP + 3
		var pkts []tpkt
		for _, p := range video {
			q := *p.pkt
			if p.frame >= hole {
				q.SequenceNumber++
			}
			p.pkt = &q
			pkts = append(pkts, p)
		}
		bl, st, asked, _ := run(t, pkts)
		if got := len(bl[videoTrack]); got != frames {
			t.Errorf("%d frames written, want all %d", got, frames)
		}
		if st.LostPackets != 1 || st.DroppedFrames != 0 || asked != 1 {
			t.Errorf("stats %+v, asked %d", st, asked)
		}
	})
}

// TestRecordQueueFull overfills the queue while the recorder's goroutine is
// not running: the overflow is dropped and counted, and video resumes at a
// keyframe.
func TestRecordQueueFull(t *testing.T) {
	video, audio := media(t)
	path := filepath.Join(t.TempDir(), "full.webm")
	r, err := newRecorder(path, WithQueueSize(32))
	if err != nil {
		t.Fatal(err)
	}
	pkts := interleave(video, audio)
	for _, p := range pkts[:100] { // nobody is reading yet
		if p.kind == Video {
			_ = r.WriteVideoRTP(p.pkt)
		} else {
			_ = r.WriteAudioRTP(p.pkt)
		}
	}
	if st := r.Stats(); st.QueueDrops != 100-32 {
		t.Fatalf("queue drops %d, want %d", st.QueueDrops, 100-32)
	}
	go r.run()
	feedPaced(t, r, pkts[100:], 8)
	info, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", info.Stats)
	bl := blocks(t, path)
	v := bl[videoTrack]
	if len(v) == 0 || !v[0].key {
		t.Fatal("video does not start at a keyframe")
	}
	resumed := false
	for i := 1; i < len(v); i++ {
		if v[i].t-v[i-1].t > 1000/fixtureFPS+1 {
			resumed = true
			if !v[i].key {
				t.Errorf("video resumes at %d ms on a non-keyframe", v[i].t)
			}
		}
	}
	if !resumed {
		t.Error("no gap in the video")
	}
	if len(bl[audioTrack]) == 0 {
		t.Error("no audio")
	}
	decodeClean(t, path)
}

// TestRecordAudioOnly: with no video at all, the file starts after StartWait
// of audio and holds all of it.
func TestRecordAudioOnly(t *testing.T) {
	_, audio := media(t)
	path := filepath.Join(t.TempDir(), "audio.webm")
	r, err := NewWriter(path, WithStartWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	feed(t, r, audio)
	info, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.AudioFrames != uint64(len(audio)) || info.VideoFrames != 0 {
		t.Errorf("info %+v", info)
	}
	if _, dur := ffprobe(t, path); math.Abs(dur-fixtureSeconds) > 0.05*fixtureSeconds {
		t.Errorf("duration %.3f", dur)
	}
	decodeClean(t, path)
}

// TestRecordNothing: a recorder closed without media leaves no file.
func TestRecordNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.webm")
	r, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Close(); err != ErrNoMedia {
		t.Fatalf("close: %v, want ErrNoMedia", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file left behind: %v", err)
	}
	if err := r.WriteVideoRTP(nil); err != ErrClosed {
		t.Fatalf("write after close: %v", err)
	}
}
