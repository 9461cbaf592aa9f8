package sfu

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v2"
	"github.com/pion/webrtc/v3"

	"github.com/opscenter/opscenter/media"
)

// startTURN starts the embedded TURN server (UDP) with either a static
// long-term credential or REST-style HMAC credentials (TURNConfig.Secret).
func (e *Engine) startTURN(lf logging.LoggerFactory) error {
	tc := e.cfg.TURN
	if tc.Secret == "" && (tc.Username == "" || tc.Password == "") {
		return fmt.Errorf("%w: TURN needs Username/Password or Secret", ErrConfig)
	}
	relayIP := tc.RelayIP
	if relayIP == "" && len(e.cfg.PublicIPs) > 0 {
		relayIP = e.cfg.PublicIPs[0]
	}
	if relayIP == "" {
		relayIP = "127.0.0.1"
	}
	ip := net.ParseIP(relayIP)
	if ip == nil {
		return fmt.Errorf("%w: TURN relay IP %q", ErrConfig, relayIP)
	}
	pc, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", tc.Port))
	if err != nil {
		return fmt.Errorf("sfu: listen TURN: %w", err)
	}
	var auth turn.AuthHandler
	if tc.Secret != "" {
		secret, realm := tc.Secret, tc.Realm
		auth = func(username, _ string, _ net.Addr) ([]byte, bool) {
			exp, _, _ := strings.Cut(username, ":")
			t, err := strconv.ParseInt(exp, 10, 64)
			if err != nil || t < time.Now().Unix() {
				return nil, false
			}
			return turn.GenerateAuthKey(username, realm, media.TURNPassword(secret, username)), true
		}
	} else {
		key := turn.GenerateAuthKey(tc.Username, tc.Realm, tc.Password)
		user := tc.Username
		auth = func(username, _ string, _ net.Addr) ([]byte, bool) {
			if username != user {
				return nil, false
			}
			return key, true
		}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         tc.Realm,
		AuthHandler:   auth,
		LoggerFactory: lf,
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: ip, Address: "0.0.0.0"},
		}},
	})
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("sfu: TURN server: %w", err)
	}
	e.turn = srv
	e.turnPC = pc
	e.turnPort = pc.LocalAddr().(*net.UDPAddr).Port
	return nil
}

// ICEServers returns the ICE servers a client should use for the embedded
// TURN server (nil if disabled). host is the address clients reach us at.
func (e *Engine) ICEServers(host, username, password string) []webrtc.ICEServer {
	if e.turnPort == 0 {
		return nil
	}
	return []webrtc.ICEServer{{
		URLs:       []string{fmt.Sprintf("turn:%s?transport=udp", net.JoinHostPort(host, fmt.Sprint(e.turnPort)))},
		Username:   username,
		Credential: password,
	}}
}
