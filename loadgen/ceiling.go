package loadgen

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/opscenter/opscenter/internal/harness"
	"github.com/opscenter/opscenter/synth/media"
)

// The ceiling scenario is the yardstick for the fanout figures (issue 14):
// a bare program that does only what the SFU cannot avoid for each packet
// of the fanout scenario, namely one AES-128-GCM SRTP seal per subscriber
// with that subscriber's own key and the sendmmsg(2) of the sealed
// datagrams to N loopback sockets. Its packets per CPU-second on the
// server's core is the most any SFU could forward on this machine, so
// "fanout's pkt per CPU-s as a % of the same machine's ceiling" compares
// across machines, where the absolute figure does not.
//
// The SFU's sealing and batching code is unexported (sfu/egress_srtpgcm.go,
// egress_batchconn.go, egress_sendmmsg_linux.go), so this file has the
// minimal bare loop with the same libraries and the same shape: crypto/aes
// + cipher.NewGCM sealing in place (RFC 7714 IV, RFC 3711 key derivation),
// a preallocated batch of 128 datagrams flushed with one raw non-blocking
// sendmmsg on a single udp4 socket bound to 0.0.0.0 (as the SFU's ICE
// socket). The per-subscriber header it writes is the SFU's: 12 bytes plus
// the transport-wide sequence number extension (8 bytes). What the SFU
// does beyond this (publisher ingest and decryption, the rewriter's
// bookkeeping, RTCP, TWCC feedback, the estimator, timers, signaling, GC
// of a bigger heap) is what the ratio measures.
//
// Layout: the generator (pinned to -gen-cpu) opens N receiving sockets and
// drains them with one goroutine each through Go's netpoller, as Pion's ICE
// read loop does for each fanout subscriber, so the kernel's loopback
// delivery and wake-ups are the same. It re-executes its own binary pinned
// to -server-cpu as the sender (CeilingSenderMain); the sender measures
// its own CPU (getrusage) over the window and reports on stdout.

// CeilingSenderEnv marks the re-executed sender process of the ceiling
// scenario; cmd/loadgen checks it first (CeilingSenderRequested).
const CeilingSenderEnv = "LOADGEN_CEILING_SENDER"

// CeilingSenderRequested reports whether this process is a ceiling sender.
func CeilingSenderRequested() bool { return os.Getenv(CeilingSenderEnv) == "1" }

// ceilingConfig is what the generator tells the sender (JSON on stdin).
type ceilingConfig struct {
	Ports    []int         `json:"ports"` // the receivers on 127.0.0.1
	Warmup   time.Duration `json:"warmup"`
	Duration time.Duration `json:"duration"`
	FPS      int           `json:"fps"`
}

// ceilingReport is what the sender tells the generator (JSON on stdout).
type ceilingReport struct {
	Seconds      float64 `json:"seconds"`       // measurement window (wall)
	CPUSeconds   float64 `json:"cpu_seconds"`   // utime+stime of the sender over the window
	Packets      uint64  `json:"packets"`       // datagrams sent in the window
	PayloadBytes uint64  `json:"payload_bytes"` // their RTP payload bytes
	FanoutP50Us  float64 `json:"fanout_p50_us"` // first seal to last sendmmsg, per source packet
	FanoutP99Us  float64 `json:"fanout_p99_us"`
	FanoutP999Us float64 `json:"fanout_p999_us"`
	TotalSent    uint64  `json:"total_sent"` // whole run, for the receivers' loss
	TotalErrs    uint64  `json:"total_errors"`
	Calls        uint64  `json:"sendmmsg_calls"` // whole run
	RSS          int64   `json:"rss"`
	PeakRSS      int64   `json:"peak_rss"`
}

// The forwarded packets' shape, as sfu.Slot.send writes them.
const (
	ceilTWCCExtID = 5  // any one-byte id: only the size matters here
	ceilHdrLen    = 20 // 12-byte RTP header + one-byte-extension block with 2 bytes of TWCC
	ceilTagLen    = 16 // AES-GCM tag
	ceilMaxBatch  = 128
	ceilBufSize   = 1500
	ceilVideo     = 0
	ceilAudio     = 1
)

// ceilStream is one subscriber's rewritten stream (video or audio): its
// own SSRC, sequence offset and rollover counter, as the SFU's rewriter and
// srtpGCM keep them.
type ceilStream struct {
	ssrc    uint32
	seqOff  uint16
	started bool
	roc     uint32
	last    uint16
}

// rocFor is sfu.srtpGCM.rocFor: the rollover counter of seq.
func (st *ceilStream) rocFor(seq uint16) uint32 {
	if !st.started {
		st.started, st.last = true, seq
		return st.roc
	}
	if int16(seq-st.last) > 0 {
		if seq < st.last {
			st.roc++
		}
		st.last = seq
		return st.roc
	}
	if seq > st.last && st.roc > 0 {
		return st.roc - 1
	}
	return st.roc
}

// ceilSub is one subscriber: its own SRTP key (one DTLS session per
// subscriber, hence one master key for both its streams) and address.
type ceilSub struct {
	masterKey, masterSalt []byte // kept for the test's decryption
	aead                  cipher.AEAD
	salt                  [12]byte
	addr                  *net.UDPAddr
	streams               [2]ceilStream
	twcc                  uint16
}

// ceilingSender is the bare fan-out loop. Not safe for concurrent use: one
// goroutine runs it, as one publisher reader runs a layer's fan-out.
type ceilingSender struct {
	conn     *net.UDPConn
	subs     []ceilSub
	maxBatch int

	// the batch: preallocated buffers, lengths and destinations
	n    int
	bufs [][ceilBufSize]byte
	lens []int
	dst  []int // subscriber index of each datagram
	plat ceilPlatform
	iv   [12]byte

	sent, errs, calls, payload atomic.Uint64
}

// newCeilingSender opens the sending socket and gives each destination a
// fresh random SRTP master key and salt.
func newCeilingSender(dsts []*net.UDPAddr, maxBatch int) (*ceilingSender, error) {
	if maxBatch <= 0 || maxBatch > ceilMaxBatch {
		maxBatch = ceilMaxBatch
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, err
	}
	s := &ceilingSender{conn: conn, maxBatch: maxBatch, subs: make([]ceilSub, len(dsts)),
		bufs: make([][ceilBufSize]byte, maxBatch), lens: make([]int, maxBatch), dst: make([]int, maxBatch)}
	for i, a := range dsts {
		sub := &s.subs[i]
		sub.addr = a
		sub.masterKey, sub.masterSalt = make([]byte, 16), make([]byte, 12)
		if _, err := rand.Read(sub.masterKey); err != nil {
			conn.Close()
			return nil, err
		}
		if _, err := rand.Read(sub.masterSalt); err != nil {
			conn.Close()
			return nil, err
		}
		if sub.aead, err = ceilGCM(sub.masterKey, sub.masterSalt, sub.salt[:]); err != nil {
			conn.Close()
			return nil, err
		}
		// Distinct SSRCs and sequence offsets per subscriber, as the
		// rewriter gives each slot; the offsets make the sequence wrap
		// (and the ROC move) at different times for different subscribers.
		sub.streams[ceilVideo] = ceilStream{ssrc: 0x10000000 + uint32(i)*2, seqOff: uint16(i * 977)}
		sub.streams[ceilAudio] = ceilStream{ssrc: 0x10000001 + uint32(i)*2, seqOff: uint16(i * 331)}
	}
	if err := s.plat.init(s); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *ceilingSender) Close() error { return s.conn.Close() }

// ceilGCM derives the SRTP session key and salt (RFC 3711 §4.3.3, key
// derivation rate 0, as pion/srtp and sfu.srtpKDF) and returns the AEAD;
// the session salt goes to salt.
func ceilGCM(masterKey, masterSalt, salt []byte) (cipher.AEAD, error) {
	kdf := func(label byte, n int) ([]byte, error) {
		block, err := aes.NewCipher(masterKey)
		if err != nil {
			return nil, err
		}
		var in [16]byte
		copy(in[:], masterSalt)
		in[7] ^= label
		out := make([]byte, (n+15)/16*16)
		for i, o := uint16(0), 0; o < n; i, o = i+1, o+16 {
			binary.BigEndian.PutUint16(in[14:], i)
			block.Encrypt(out[o:o+16], in[:])
		}
		return out[:n], nil
	}
	key, err := kdf(0x00, 16) // SRTP encryption key
	if err != nil {
		return nil, err
	}
	s, err := kdf(0x02, 12) // SRTP salt
	if err != nil {
		return nil, err
	}
	copy(salt, s)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// fanout seals p for every subscriber into the batch and sends it: the
// batch is flushed when full and at the end, so N = 190 makes two
// sendmmsg calls per source packet, as the SFU's batch of 128 does.
func (s *ceilingSender) fanout(p *rtp.Packet, stream int) {
	pl := p.Payload
	if ceilHdrLen+len(pl)+ceilTagLen > ceilBufSize {
		return // synth/media's MTU is 1200: never
	}
	for i := range s.subs {
		if s.n == s.maxBatch {
			s.flush()
		}
		sub := &s.subs[i]
		st := &sub.streams[stream]
		seq := p.SequenceNumber + st.seqOff
		sub.twcc++
		b := s.bufs[s.n][:]
		b[0] = 0x90 // V=2, X=1
		b[1] = p.PayloadType & 0x7f
		if p.Marker {
			b[1] |= 0x80
		}
		binary.BigEndian.PutUint16(b[2:], seq)
		binary.BigEndian.PutUint32(b[4:], p.Timestamp)
		binary.BigEndian.PutUint32(b[8:], st.ssrc)
		b[12], b[13], b[14], b[15] = 0xbe, 0xde, 0, 1 // one-byte extensions, 1 word
		b[16] = ceilTWCCExtID<<4 | 1                  // 2 bytes
		b[17], b[18], b[19] = byte(sub.twcc>>8), byte(sub.twcc), 0
		n := ceilHdrLen + copy(b[ceilHdrLen:], pl)
		// RFC 7714 IV: 00 00 || SSRC || ROC || SEQ, XOR the session salt.
		iv := &s.iv
		*iv = [12]byte{}
		binary.BigEndian.PutUint32(iv[2:], st.ssrc)
		binary.BigEndian.PutUint32(iv[6:], st.rocFor(seq))
		binary.BigEndian.PutUint16(iv[10:], seq)
		for j := range iv {
			iv[j] ^= sub.salt[j]
		}
		out := sub.aead.Seal(b[:ceilHdrLen], iv[:], b[ceilHdrLen:n], b[:ceilHdrLen])
		s.lens[s.n] = len(out)
		s.dst[s.n] = i
		s.n++
		s.payload.Add(uint64(len(pl)))
	}
	s.flush()
}

// flush sends the batch (platform code: sendmmsg on Linux).
func (s *ceilingSender) flush() {
	if s.n == 0 {
		return
	}
	s.plat.flush(s)
	s.n = 0
}

// writeOne is the fallback for one datagram (socket buffer full, or no
// sendmmsg): a normal WriteTo, which waits for the socket, as the SFU's.
func (s *ceilingSender) writeOne(i int) {
	if _, err := s.conn.WriteToUDP(s.bufs[i][:s.lens[i]], s.subs[s.dst[i]].addr); err != nil {
		s.errs.Add(1)
		return
	}
	s.sent.Add(1)
}

// runCeiling paces the fanout scenario's program through the sender: the
// top layer of loadgen's program (ProgramLayers' last, 1280×720 at 1 Mbit/s,
// keyframes every 10 s) and Opus-sized audio at 50 packets/s, generated by
// synth/media exactly as the fanout's publisher does, so the packet sizes
// and the rate per subscriber are the fanout's. It runs for warmup +
// duration (bounded by both and by ctx) and measures the window.
func runCeiling(ctx context.Context, s *ceilingSender, cfg ceilingConfig) (ceilingReport, error) {
	var rep ceilingReport
	if cfg.FPS <= 0 {
		cfg.FPS = 30
	}
	top := ProgramLayers[len(ProgramLayers)-1]
	v := media.NewVideo(media.VideoConfig{Code: "22", RID: top.RID, Width: top.Width, Height: top.Height,
		FPS: cfg.FPS, Bitrate: top.Bitrate, KeyframeInterval: 10 * time.Second, SSRC: 1002})
	a := media.NewAudio(media.AudioConfig{Code: "22", SSRC: 2000})
	var hist Hist
	emit := func(stream int) func(*rtp.Packet) error {
		return func(p *rtp.Packet) error {
			t := time.Now()
			s.fanout(p, stream)
			hist.Record(time.Since(t))
			return nil
		}
	}
	emitV, emitA := emit(ceilVideo), emit(ceilAudio)
	start := time.Now()
	winStart, end := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	frame, audio := time.Second/time.Duration(cfg.FPS), 20*time.Millisecond
	nextV, nextA := start, start
	var c0 time.Duration
	var pk0, pb0 uint64
	var h0 HistSnap
	measuring := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		now := time.Now()
		if !measuring && !now.Before(winStart) {
			measuring = true
			c0, pk0, pb0, h0 = processCPU(), s.sent.Load(), s.payload.Load(), hist.Snap()
			winStart = now
		}
		if !now.Before(end) {
			break
		}
		// One goroutine, two schedules on absolute times: a late tick is
		// served at once and does not shift the next ones.
		switch {
		case !now.Before(nextV):
			_ = v.NextFrame(now, emitV)
			nextV = nextV.Add(frame)
			continue
		case !now.Before(nextA):
			_ = a.NextPacket(now, emitA)
			nextA = nextA.Add(audio)
			continue
		}
		wake := nextV
		if nextA.Before(wake) {
			wake = nextA
		}
		if end.Before(wake) {
			wake = end
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-timer.C:
		}
	}
	c1, pk1, pb1, h1 := processCPU(), s.sent.Load(), s.payload.Load(), hist.Snap()
	el := time.Since(winStart).Seconds()
	d := h1.Sub(h0)
	rep = ceilingReport{Seconds: el, CPUSeconds: (c1 - c0).Seconds(), Packets: pk1 - pk0, PayloadBytes: pb1 - pb0,
		FanoutP50Us: us(d.Quantile(0.5)), FanoutP99Us: us(d.Quantile(0.99)), FanoutP999Us: us(d.Quantile(0.999)),
		TotalSent: s.sent.Load(), TotalErrs: s.errs.Load(), Calls: s.calls.Load()}
	if ps, err := harness.ReadProc(0); err == nil {
		rep.RSS, rep.PeakRSS = ps.RSS, ps.PeakR
	}
	return rep, nil
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// CeilingSenderMain is the sender process: it reads its configuration
// from in, runs the bounded loop and writes its report to out.
func CeilingSenderMain(in io.Reader, out io.Writer) error {
	var cfg ceilingConfig
	if err := json.NewDecoder(in).Decode(&cfg); err != nil {
		return fmt.Errorf("ceiling sender: config: %w", err)
	}
	dsts := make([]*net.UDPAddr, len(cfg.Ports))
	for i, p := range cfg.Ports {
		dsts[i] = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p}
	}
	s, err := newCeilingSender(dsts, 0)
	if err != nil {
		return fmt.Errorf("ceiling sender: %w", err)
	}
	defer s.Close()
	// Bounded even if the generator forgets us: the loop ends at
	// warmup+duration, the context a minute later at the latest.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Warmup+cfg.Duration+time.Minute)
	defer cancel()
	rep, err := runCeiling(ctx, s, cfg)
	if err != nil {
		return fmt.Errorf("ceiling sender: %w", err)
	}
	return json.NewEncoder(out).Encode(rep)
}

// ceilingReceivers are the N loopback sockets of the generator's side, each
// drained by its own goroutine that reads and counts, nothing else.
type ceilingReceivers struct {
	conns []*net.UDPConn
	got   []atomic.Uint64
	wg    sync.WaitGroup
	// check, if set, sees every datagram (tests); it runs on the reader.
	check func(i int, b []byte)
}

func newCeilingReceivers(n int, check func(int, []byte)) (*ceilingReceivers, error) {
	r := &ceilingReceivers{got: make([]atomic.Uint64, n), check: check}
	for i := 0; i < n; i++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			r.Close()
			return nil, err
		}
		r.conns = append(r.conns, c)
	}
	for i, c := range r.conns {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			buf := make([]byte, 1500)
			for {
				n, _, err := c.ReadFromUDP(buf)
				if err != nil {
					return // closed
				}
				if r.check != nil {
					r.check(i, buf[:n])
				}
				r.got[i].Add(1)
			}
		}()
	}
	return r, nil
}

func (r *ceilingReceivers) addrs() []*net.UDPAddr {
	out := make([]*net.UDPAddr, len(r.conns))
	for i, c := range r.conns {
		out[i] = c.LocalAddr().(*net.UDPAddr)
	}
	return out
}

func (r *ceilingReceivers) total() uint64 {
	var t uint64
	for i := range r.got {
		t += r.got[i].Load()
	}
	return t
}

// waitTotal waits (bounded) until the receivers have read want datagrams.
func (r *ceilingReceivers) waitTotal(want uint64, timeout time.Duration) uint64 {
	deadline := time.Now().Add(timeout)
	for {
		t := r.total()
		if t >= want || time.Now().After(deadline) {
			return t
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close closes the sockets and waits for the readers.
func (r *ceilingReceivers) Close() {
	for _, c := range r.conns {
		c.Close()
	}
	r.wg.Wait()
}

// ceilingRun is the generator's side of the ceiling scenario: receivers
// here (on -gen-cpu), the sender re-executed from our own binary on the
// server's core (taskset, as the server), figures in fanout's row shape.
func ceilingRun(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Scenario: cfg.Scenario, N: cfg.N, Load: loadavg()}
	rx, err := newCeilingReceivers(cfg.N, nil)
	if err != nil {
		return res, err
	}
	defer rx.Close()
	res.Endpoints = cfg.N
	cc := ceilingConfig{Warmup: cfg.Warmup, Duration: cfg.Duration, FPS: cfg.FPS}
	for _, a := range rx.addrs() {
		cc.Ports = append(cc.Ports, a.Port)
	}
	in, err := json.Marshal(cc)
	if err != nil {
		return res, err
	}
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	args := []string{exe}
	if cfg.Server.CPU >= 0 {
		tp, err := exec.LookPath("taskset")
		if err != nil {
			return res, fmt.Errorf("ceiling: -server-cpu %d needs taskset: %w", cfg.Server.CPU, err)
		}
		args = append([]string{tp, "-c", strconv.Itoa(cfg.Server.CPU)}, args...)
	}
	// Bounded: the sender stops by itself after warmup+duration.
	rctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, args[0], args[1:]...)
	cmd.Env = append(append(os.Environ(), CeilingSenderEnv+"=1"), cfg.Server.Env...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	cfg.Logf("ceiling: sender on core %d, %d receivers, warm-up %v, window %v", cfg.Server.CPU, cfg.N, cfg.Warmup, cfg.Duration)
	g0, _ := harness.ReadProc(0)
	t0 := time.Now()
	out, err := cmd.Output()
	if err != nil {
		return res, fmt.Errorf("ceiling sender: %w", err)
	}
	var rep ceilingReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return res, fmt.Errorf("ceiling sender report: %w", err)
	}
	got := rx.waitTotal(rep.TotalSent, 2*time.Second)
	g1, _ := harness.ReadProc(0)
	el := time.Since(t0).Seconds()
	if rep.Seconds <= 0 {
		return res, errors.New("ceiling sender: empty window")
	}
	res.Seconds = rep.Seconds
	res.ServerCores = rep.CPUSeconds / rep.Seconds
	res.ServerRSSMiB = float64(rep.RSS) / (1 << 20)
	res.ServerPeakRSSMiB = float64(rep.PeakRSS) / (1 << 20)
	res.FwdPPS = float64(rep.Packets) / rep.Seconds
	res.FwdMbps = float64(rep.PayloadBytes+12*rep.Packets) * 8 / rep.Seconds / 1e6 // fanout's unit
	if rep.CPUSeconds > 0 {
		res.PktsPerCPUSec = float64(rep.Packets) / rep.CPUSeconds
	}
	res.InServerP50Us, res.InServerP99Us, res.InServerP999Us = rep.FanoutP50Us, rep.FanoutP99Us, rep.FanoutP999Us
	res.RecvPPS = float64(got) / el
	if want := rep.TotalSent + rep.TotalErrs; want > got {
		res.Loss = float64(want-got) / float64(want)
	}
	res.ServerDropped = rep.TotalErrs
	res.GenCores = (g1.CPU - g0.CPU).Seconds() / el
	cfg.Logf("ceiling: %d datagrams in %d sendmmsg calls, %d received, %d errors", rep.TotalSent, rep.Calls, got, rep.TotalErrs)
	return res, nil
}
