package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3/pkg/media/ivfreader"
	"github.com/pion/webrtc/v3/pkg/media/oggreader"
)

// Test media: real VP8 and Opus made by ffmpeg, packetized by pion.

const (
	fixtureSeconds = 6
	fixtureFPS     = 15
	fixtureGOP     = 15 // a keyframe each second
)

// tb is the part of testing.TB the media helpers use, so that the crash
// test's child process, which runs outside a test, can use them too.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// needFFmpeg skips without ffmpeg, except in CI, where a skip would hide a
// missing dependency.
func needFFmpeg(t tb) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI (install the ffmpeg package): %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

var (
	fixOnce sync.Once
	fixDir  string
	fixErr  error
)

// fixtures returns the directory holding v.ivf and a.ogg, made once per run.
func fixtures(t tb) string {
	t.Helper()
	needFFmpeg(t)
	fixOnce.Do(func() {
		if d := os.Getenv("RECORD_FIXTURES"); d != "" { // the crash test's child
			fixDir = d
			return
		}
		fixDir, fixErr = os.MkdirTemp("", "record-fixtures-")
		if fixErr != nil {
			return
		}
		dur := strconv.Itoa(fixtureSeconds)
		cmds := [][]string{
			{"-f", "lavfi", "-i", "testsrc=size=320x240:rate=" + strconv.Itoa(fixtureFPS), "-t", dur,
				"-c:v", "libvpx", "-g", strconv.Itoa(fixtureGOP), "-keyint_min", strconv.Itoa(fixtureGOP),
				"-b:v", "300k", "-f", "ivf", filepath.Join(fixDir, "v.ivf")},
			// One Opus packet per Ogg page, so a page is a packet.
			{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", dur,
				"-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000",
				"-f", "ogg", filepath.Join(fixDir, "a.ogg")},
		}
		for _, args := range cmds {
			cmd := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				fixErr = errors.New("ffmpeg: " + err.Error() + ": " + string(out))
				return
			}
		}
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fixDir
}

func TestMain(m *testing.M) {
	if out := os.Getenv("RECORD_CRASH_OUT"); out != "" {
		crashChild(out) // never returns
	}
	code := m.Run()
	if fixDir != "" && os.Getenv("RECORD_FIXTURES") == "" {
		os.RemoveAll(fixDir)
	}
	os.Exit(code)
}

// tpkt is one packet to feed, at media time ms.
type tpkt struct {
	kind  Kind
	ms    int64
	frame int // video frame index, or audio packet index
	key   bool
	pkt   *rtp.Packet
}

// media reads the fixtures and packetizes them.
func media(t tb) (video, audio []tpkt) {
	dir := fixtures(t)
	f, err := os.Open(filepath.Join(dir, "v.ivf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	iv, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	vp := rtp.NewPacketizer(500, 96, 0x1111, &codecs.VP8Payloader{EnablePictureID: true},
		rtp.NewFixedSequencer(65500), 90000) // wraps early on
	for i := 0; ; i++ {
		fr, _, err := iv.ParseNextFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		key := fr[0]&1 == 0
		for _, p := range vp.Packetize(fr, 90000/fixtureFPS) {
			video = append(video, tpkt{kind: Video, ms: int64(i) * 1000 / fixtureFPS, frame: i, key: key, pkt: p})
		}
	}
	g, err := os.Open(filepath.Join(dir, "a.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	og, _, err := oggreader.NewWith(g)
	if err != nil {
		t.Fatal(err)
	}
	ap := rtp.NewPacketizer(1200, 111, 0x2222, &codecs.OpusPayloader{}, rtp.NewFixedSequencer(100), 48000)
	for i := 0; ; {
		page, _, err := og.ParseNextPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		for _, p := range ap.Packetize(page, 960) {
			audio = append(audio, tpkt{kind: Audio, ms: int64(i) * 20, frame: i, pkt: p})
		}
		i++
	}
	if len(video) == 0 || len(audio) == 0 {
		t.Fatalf("fixtures gave %d video and %d audio packets", len(video), len(audio))
	}
	return video, audio
}

// interleave merges the tracks by media time, as they would arrive.
func interleave(video, audio []tpkt) []tpkt {
	all := append(append([]tpkt(nil), video...), audio...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].ms < all[j].ms })
	return all
}

// ntpAt is the sender's NTP time at media time ms, from a fixed wall clock.
func ntpAt(ms int64) uint64 {
	base := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	t := base.Add(time.Duration(ms) * time.Millisecond)
	secs := uint64(t.Unix()) + 2208988800
	frac := uint64(t.Nanosecond()) * (1 << 32) / 1e9
	return secs<<32 | frac
}

// feed writes the packets and, once a second per track, a sender report
// saying both tracks started together.
func feed(t tb, r *Recorder, pkts []tpkt) {
	t.Helper()
	feedPaced(t, r, pkts, cap(r.queue)/2)
}

// feedPaced is feed, holding back while more than maxQueued packets wait.
func feedPaced(t tb, r *Recorder, pkts []tpkt, maxQueued int) {
	t.Helper()
	var ts0 [2]uint32
	var have [2]bool
	nextSR := [2]int64{0, 0}
	for _, p := range pkts {
		if !have[p.kind] {
			have[p.kind] = true
			ts0[p.kind] = p.pkt.Timestamp - uint32(p.ms*int64([2]int{90, 48}[p.kind]))
		}
		var err error
		if p.kind == Video {
			err = r.WriteVideoRTP(p.pkt)
		} else {
			err = r.WriteAudioRTP(p.pkt)
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.ms >= nextSR[p.kind] {
			rate := int64([2]int{90, 48}[p.kind])
			r.SenderReport(p.kind, ntpAt(p.ms), ts0[p.kind]+uint32(p.ms*rate))
			nextSR[p.kind] = p.ms + 1000
		}
		// Let the recorder keep up, as it would in real time.
		for len(r.queue) > maxQueued {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

type probe struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t testing.TB, path string) (probe, float64) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries",
		"format=duration:stream=codec_name,width,height", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	d, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return p, d
}

// decodeClean decodes the whole file, or with seek arguments (-ss N) one
// frame from there, and fails on any decoder complaint.
func decodeClean(t testing.TB, path string, seek ...string) {
	t.Helper()
	a := append([]string{"-v", "error", "-xerror"}, seek...)
	a = append(a, "-i", path)
	if len(seek) > 0 {
		a = append(a, "-frames:v", "1")
	}
	a = append(a, "-f", "null", "-")
	out, err := exec.Command("ffmpeg", a...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("ffmpeg %v: %v\n%s", a, err, out)
	}
}

// countVideoFrames counts the video frames ffmpeg reads from a file.
func countVideoFrames(t testing.TB, path string) int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe -count_frames: %v", err)
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(bytes.TrimRight(out, ","))))
	if err != nil {
		t.Fatalf("ffprobe -count_frames said %q", out)
	}
	return n
}

// blocks reads back a file's blocks per track number.
func blocks(t testing.TB, path string) map[uint64][]block {
	t.Helper()
	m := map[uint64][]block{}
	if _, err := walk(path, func(_ *layout, b block) error {
		b.data = nil
		m[b.track] = append(m[b.track], b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}
