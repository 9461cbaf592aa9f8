package sfu

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
)

// srtpGCM encrypts the RTP packets of one SSRC with AEAD AES-128-GCM
// (RFC 7714), the profile browsers and our DTLS negotiate first.
//
// pion/srtp's Context does the same but allocates per packet (its IV array
// escapes through the cipher.AEAD interface), and that is per packet per
// subscriber on the fan-out. Here the IV lives in the struct, the packet is
// sealed in place, and the rollover counter is the sender's own (one SSRC,
// sequence numbers from our rewriter). TestSRTPGCMMatchesPion checks the
// output against pion/srtp's decryption, across a sequence wrap.
type srtpGCM struct {
	aead cipher.AEAD
	salt [12]byte
	iv   [12]byte // scratch

	started bool
	roc     uint32
	last    uint16
}

const (
	labelSRTPEncryption = 0x00
	labelSRTPSalt       = 0x02
)

func newSRTPGCM(masterKey, masterSalt []byte) (*srtpGCM, error) {
	if len(masterKey) != 16 || len(masterSalt) != 12 {
		return nil, fmt.Errorf("sfu: AES-128-GCM master key/salt of %d/%d bytes", len(masterKey), len(masterSalt))
	}
	key, err := srtpKDF(labelSRTPEncryption, masterKey, masterSalt, 16)
	if err != nil {
		return nil, err
	}
	salt, err := srtpKDF(labelSRTPSalt, masterKey, masterSalt, 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sfu: srtp cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sfu: srtp gcm: %w", err)
	}
	s := &srtpGCM{aead: aead}
	copy(s.salt[:], salt)
	return s, nil
}

// srtpKDF is the AES-CM key derivation of RFC 3711 §4.3.3 with a key
// derivation rate of 0 (as pion/srtp's aesCmKeyDerivation, and as WebRTC
// uses it).
func srtpKDF(label byte, masterKey, masterSalt []byte, outLen int) ([]byte, error) {
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("sfu: srtp kdf: %w", err)
	}
	var in [16]byte
	copy(in[:], masterSalt)
	in[7] ^= label
	out := make([]byte, (outLen+15)/16*16)
	for i, n := uint16(0), 0; n < outLen; i, n = i+1, n+16 {
		binary.BigEndian.PutUint16(in[14:], i)
		block.Encrypt(out[n:n+16], in[:])
	}
	return out[:outLen], nil
}

// rocFor returns the rollover counter of seq. New sequence numbers advance
// it (wrapping past 65535 counts a rollover); older ones (NACK answers) get
// the counter they were first sent with.
func (s *srtpGCM) rocFor(seq uint16) uint32 {
	if !s.started {
		s.started, s.last = true, seq
		return s.roc
	}
	if int16(seq-s.last) > 0 {
		if seq < s.last {
			s.roc++
		}
		s.last = seq
		return s.roc
	}
	if seq > s.last && s.roc > 0 { // from before the last wrap
		return s.roc - 1
	}
	return s.roc
}

// seal encrypts the RTP packet pkt[:n], whose header is pkt[:hl], in place
// and returns the SRTP packet pkt[:n+16]; cap(pkt) must allow for the tag.
func (s *srtpGCM) seal(pkt []byte, hl, n int, ssrc uint32, seq uint16) []byte {
	roc := s.rocFor(seq)
	iv := &s.iv
	*iv = [12]byte{}
	binary.BigEndian.PutUint32(iv[2:], ssrc)
	binary.BigEndian.PutUint32(iv[6:], roc)
	binary.BigEndian.PutUint16(iv[10:], seq)
	for i := range iv {
		iv[i] ^= s.salt[i]
	}
	return s.aead.Seal(pkt[:hl], iv[:], pkt[hl:n], pkt[:hl])
}
