// Package sfu is the media plane of opscenter: a selective forwarding unit
// built on Pion WebRTC v3. It knows nothing of provinces, roles or sessions;
// the signaling layer decides who sees whom and drives this package through
// the small surface in control_api.go.
//
// # Seams
//
// The files are named after the seam they belong to (one package for now;
// sub-packages are a later step):
//
//   - ingress_*: what publishers send. ingress_publisher.go (a publisher
//     leg's tracks arriving and ending), ingress_track.go (UpTrack: layers,
//     watchers, layer demand), ingress_layer.go (upLayer: the reader
//     goroutine, cache insert, fan-out), ingress_spread.go (a large
//     fan-out split across cores), ingress_cache.go (the packet
//     cache), ingress_vp8.go, ingress_tap.go (taps for the record),
//     ingress_rtcptap.go (publisher RTCP), ingress_losswin.go (recent loss).
//   - egress_*: one downlink per subscriber leg, and the only code that
//     touches Pion's internals. egress_slot.go (Slot: queue, writer
//     goroutine, attachment to layers), egress_write.go (rewrite, header,
//     SRTP, write), egress_rewriter.go, egress_downtrack.go (our
//     TrackLocal), egress_rtcp.go (NACK, PLI, reports and feedback in,
//     sender reports out), egress_downlink.go (a peer's egress state and the
//     leg's own SRTP keys and path), egress_pion.go (the one file that reads
//     Pion's unexported fields), egress_srtpgcm.go, egress_twcc.go,
//     egress_bwe.go (the estimate's inputs), egress_estimator.go,
//     egress_estimator_trend.go and egress_estimator_rate.go (the
//     estimator, its overuse detector and its rate control),
//     egress_alloc.go (pure layer allocation and probing), egress_realloc.go
//     (a peer's allocator), egress_batchconn.go and egress_sendmmsg_*.go (the
//     batched socket), egress_fwdstats.go (forwarding counters, the delay
//     histogram and the Prometheus collector).
//   - control_*: the small API that signaling uses, through interfaces it
//     declares (signaling/engine.go; internal/app builds the Engine, adapts
//     it and sets its Hooks), so signaling does not import this package.
//     The values and errors both sides speak (Target, layers, the stats
//     types, ErrClosed and the negotiation errors, the TURN credential
//     scheme) are declared in package media and aliased here. control_api.go
//     (errors, Config, Hooks, stats types and the list of methods), control_engine.go
//     (Engine: sockets, the two webrtc.APIs, the peers), control_peer.go
//     (Peer, its lock order, the publisher leg's offers), control_subscriber.go
//     (the subscriber leg, its slots and offers), control_slot.go (a Slot's
//     source, layer, mute and stats), control_whip.go (WHIP and WHEP),
//     control_stats.go (Peer.Stats), control_turn.go (the embedded TURN
//     server).
//   - shared_clock.go: the media clock (nanotime), the rate limiter and the
//     rate meter, used by both sides.
//
// Ingress hands packets to egress in one place, upLayer.fanout calling
// Slot.enqueue; egress reads a layer's packet cache and asks for keyframes
// through upLayer.requestPLI. The lock order is written on Peer and on Slot;
// every other mutex says where it is declared what it may be taken under.
//
// # Two PeerConnections per endpoint
//
// Every Peer has a publisher PeerConnection (the client offers, the server
// answers: simulcast VP8 with rids q/h/f and Opus, client→server) and a
// subscriber PeerConnection (the server offers, the client answers:
// server→client). Each side is always the offerer of its own direction, so
// offers never collide (no glare handling, no "polite peer"). Renegotiation
// of the subscriber leg is rare: it is only needed when slots are added or
// removed (OnNegotiationNeeded → CreateSubscriberOffer → SetSubscriberAnswer).
// The Peer keeps the whole negotiation state (the offer awaiting its answer,
// a renegotiation owed meanwhile, the last publisher offer and answer);
// signaling reads it (SubscriberOffer, PublisherOffer) rather than copying it.
// Bursts of AddSlot are coalesced into one offer, and a follow-up offer waits
// until the first negotiation has connected (Pion answerers otherwise treat
// an early re-offer as an ICE restart).
//
// # Slots
//
// The subscriber leg is made of slots: a slot is one sendonly transceiver
// with one SSRC, whose source (publisher track and simulcast layer) can be
// switched at runtime without renegotiation. Program, floor and console tiles
// are slots; a floor change is Slot.SetSource. The slot's TrackLocal is our
// own (downTrack) so we control SSRC, payload type and the RTP header.
//
// A video switch (source or layer) takes effect at the next keyframe of the
// new layer: the slot attaches to the new layer, a PLI is requested (rate
// limited per publisher layer, Config.PLIInterval) and the old layer keeps
// flowing until the keyframe arrives, so the picture never freezes. Audio
// switches at once. Each switch starts a new "epoch" in the rewriter:
// outgoing sequence numbers continue at last+1, timestamps continue from the
// last one plus the wall time elapsed (at least one 30 fps frame for video,
// 20 ms for audio). The subscriber sees one continuous stream. SetSource(nil)
// or SetMuted gates the slot.
//
// # Up tracks, layers and the packet cache
//
// An UpTrack is one published (publisher, kind). Video has up to three
// layers keyed by rid (q=0, h=1, f=2); a non-simulcast track is layer 0. One
// reader goroutine per layer owns its read buffer and a reused rtp.Packet,
// parses the VP8 payload descriptor (keyframe = S bit, partition 0, P bit
// clear; width and height from the keyframe header), measures bitrate,
// jitter and sequence gaps, and inserts the payload into the layer's packet
// cache: a fixed ring indexed by seq & mask with preallocated buffers,
// shared by every subscriber of the layer (512 packets for f, 256 for h, 128
// for q, 64 for audio; allocated on first use, released while no slot is
// attached to the layer).
//
// Fan-out reads a copy-on-write slice of slots (atomic.Pointer, no global
// lock). For a subscriber whose selected ICE pair is UDP, the publisher's
// reader rewrites the header and writes the packet itself, straight from its
// read buffer (no goroutine hop; a per-slot mutex, contended only while two
// layers feed one slot during a switch, guards the rewriter). The write does
// not go through Pion: once the subscriber leg's DTLS is up the slot
// encrypts with its own SRTP context, made from the leg's keys
// (egress_downlink.go; the keys come from two unexported fields of Pion's
// DTLSTransport, checked at NewEngine by CheckPionInternals, the DTLS role
// from the negotiated a=setup; a leg that cannot take this path falls back
// to Pion's writer loudly: an error log and the gauges
// opscenter_sfu_downlink_legs{path} and opscenter_sfu_own_srtp_available),
// and the datagram goes into the batch of batchConn, the
// wrapper around the engine's single ICE UDP socket, which leaves in one
// sendmmsg when the fan-out ends (never on a timer). A fan-out to at least
// twice Config.FanoutSpread slots (default 32) is split into parts that a pool of
// GOMAXPROCS-1 helpers, started once per Engine, runs in parallel with the
// reader, each helper with a sendmmsg batch of its own; the reader waits
// for every part, so each subscriber still gets the layer's packets in
// order, and takes back any part no helper has started (ingress_spread.go).
// A subscriber on ICE-TCP
// (whose socket can stall) gets a bounded queue and its own writer
// goroutine, started on first use: the reader hands it a small value
// (layer, seq, flags) and the writer copies the payload out of the cache,
// encrypts it the same way and writes it through Pion's SRTP endpoint for
// the leg. Nothing on either path allocates per packet per subscriber in
// this package, and a slow subscriber never blocks the publisher: when its
// queue is full the packet is dropped, and video then drops until the next
// keyframe, where the writer re-syncs (new epoch, continuous sequence
// numbers) after asking for a PLI.
//
// The engine counts forwarded packets and keeps a lock-free histogram of
// the in-server delay: from the reader getting the packet off the
// publisher's track to its last datagram handed to the kernel (one
// observation per fan-out on the direct path, one per write on the queued
// path). Engine.ForwardStats and Engine.Collector expose them.
//
// Publisher RTCP (sender reports) is drained by an interceptor (ingress_rtcptap.go)
// rather than RTPReceiver.ReadSimulcast, which races with Pion binding late
// simulcast and RTX streams; Peer.Stats reports its arrival time as
// Publisher.LastRTCP and a 4 s windowed loss as Publisher.RecentLoss.
// PeerStats.PubVideo/PubAudio give, per kind, whether the publisher leg
// negotiated it, when its last media RTP arrived, whether every layer is
// paused on purpose and when a layer last resumed: signaling combines them
// with the endpoint's mute state to tell media expected but not arriving.
//
// Retransmissions from the publisher (RTX, unwrapped by Pion and told apart
// by interceptor attribute AttributeRtxSsrc) only fill holes in the cache and
// are forwarded if they were missing; they never count as media or
// keyframes, and padding-only probes are dropped. Upstream NACKs are
// generated by Pion's NACK generator on the publisher leg.
//
// # NACK, PLI and reports on the subscriber side
//
// Pion's NACK responder is deliberately not registered on the subscriber
// leg (it would keep a copy of every packet per subscriber). Each slot reads
// the RTCP of its RTPSender: a NACK is mapped back to the source sequence
// number through the current epoch's offset (older epochs are not
// answerable) and answered from the shared layer cache with the rewritten
// header; PLI/FIR are forwarded as a rate-limited PLI to the publisher of the
// current layer; receiver reports give loss, jitter and RTT (LSR/DLSR) per
// slot; REMB, if a client sends it, caps the estimate.
//
// # Bandwidth estimation and layer selection
//
// The subscriber leg has no Pion interceptors. Every packet carries the
// transport-wide sequence number extension; twccHistory (egress_twcc.go) remembers
// its send time and size in a fixed ring, and the subscriber's TWCC feedback
// feeds a send-side estimator in the manner of Google Congestion Control
// (egress_estimator.go: trendline delay detector, AIMD rate control, loss-based
// cap), once per feedback packet rather than per media packet. A rising
// delay alone is not congestion: receivers on a busy machine stamp
// arrivals late and in bursts, so an overuse cuts the estimate only while
// the acked rate falls below 90 % of the sent rate (2 s windows) or after
// it has lasted 2.5 s; loss cuts it as before. Each slot sends its own
// sender reports (every second).
//
// Media timers (PLI limiting, TWCC send times, the estimator, rates, last
// RTP and RTCP) read nanotime, Go's monotonic clock from a base taken at
// start; wall time is used only for RTCP's NTP fields.
//
// Twice a second, and on every control change, a Peer's allocator
// distributes 90% of the estimate (minus an audio reserve) over its video
// slots in creation order: every watched slot gets layer 0, then
// slots are upgraded one layer at a time while the measured layer bitrates
// fit. The result per slot is a target layer = min(requested, what bandwidth
// allows) and an effective layer = the best active layer at or below the
// target. Because the estimator never estimates far above what is actually
// sent, a capped slot probes upwards (1 s after the peer starts) by
// allowing 1.5× the estimate, and at least the next layer of the first
// capped slot, for up to 4 s. While nothing congests, the estimate takes
// the acked rate of the probed layer at once; the probe succeeds as soon as
// the estimate carries the probed allocation and the next one starts at
// once, so a subscriber with room climbs from the low to the top layer in
// a few seconds. A failed probe backs off (3 s doubling to 80 s).
// Peer.SetMaxBitrate adds a static cap (weak links, tests).
//
// # Layer demand and pausing
//
// Per publisher layer the engine knows whether any slot targets it; the
// base layer is needed whenever anybody watches the track, so switches are
// fast. Hooks.OnLayerDemand reports changes: a resume at once, a pause only
// after Config.PauseDelay without demand (debounce). Signaling forwards
// these to the publisher's client, which pauses or resumes that encoding
// (RTCRtpSender.setParameters active=false/true). While a target layer is
// paused, the slot keeps forwarding the best active layer below it.
//
// # Taps (the record)
//
// UpTrack.Tap(layer, sink) is a server-side subscriber of one layer for
// the recording of the program and the floor (ingress_tap.go): the layer's reader
// hands the sink the publisher's original packets (continuous sequence
// numbers and RTP timestamps, no rewriting) right after the cache insert,
// including retransmissions that fill a hole; the publisher leg's RTCP tap
// parses sender reports in place while the peer has taps and passes each
// layer's NTP/RTP pairs to its taps. A tap counts as demand for its layer
// (only that one, not the base layer), so a recorded top layer is never
// paused, and keeps the layer's packet cache: Tap.Refill replays a range
// from it, Tap.RequestKeyframe is the layer's rate-limited PLI. Per packet
// a tap costs one atomic load when nothing is tapped and no allocation when
// something is (BenchmarkRecordTapFeed); the sink must not block.
//
// # Active speaker
//
// Up audio tracks read the ssrc-audio-level header extension (RFC 6464) and
// keep a smoothed level per peer (Peer.AudioLevel, Engine.ActiveSpeaker).
//
// # Network
//
// One Engine owns one ICE UDP socket (a single port, UDPMuxDefault on the
// unspecified address), one ICE-TCP listener (TCPMux), optional NAT 1:1
// public IPs announced as host candidates, and an optional embedded TURN
// server (pion/turn) with a static or REST-style (HMAC) long-term credential.
// SRTP prefers AEAD AES-128-GCM. mDNS candidates are disabled.
package sfu
