package tlsconf

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"net"
	"slices"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Golden bytes from docs/protocol.md §9.2 (verified against upstream).
func TestMarshalSANGolden(t *testing.T) {
	tests := []struct {
		name    string
		dns     []string
		ips     []net.IP
		ids     []string
		wantHex string
	}{
		{"node id only", nil, nil, []string{"node1"},
			"30 16 a0 14 06 09 2b0601040192081301 a0 07 0c 05 6e6f646531"},
		{"dns ip and node id", []string{"example.com"}, []net.IP{net.ParseIP("127.0.0.1")}, []string{"node1"},
			"3029 820b6578616d706c652e636f6d 87047f000001 a014 06092b0601040192081301 a007 0c056e6f646531"},
		{"empty", nil, nil, nil, "3000"},
		{"ipv6", nil, []net.IP{net.ParseIP("::1")}, nil,
			"3012 8710 00000000000000000000000000000001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ext, err := MarshalSAN(tt.dns, tt.ips, tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			if !ext.Id.Equal(OIDSubjectAltName) || ext.Critical {
				t.Errorf("extension id %v critical %v", ext.Id, ext.Critical)
			}
			if want := mustHex(t, tt.wantHex); !bytes.Equal(ext.Value, want) {
				t.Errorf("SAN = %x, want %x", ext.Value, want)
			}
			got, err := ParseSANNodeIDs(ext.Value)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.ids) {
				t.Errorf("parsed node IDs %q, want %q", got, tt.ids)
			}
		})
	}
}

func TestMarshalSANRejects(t *testing.T) {
	if _, err := MarshalSAN([]string{"bücher.example"}, nil, nil); err == nil {
		t.Error("non-ASCII DNS name accepted")
	}
	if _, err := MarshalSAN(nil, nil, []string{"bad\xff"}); err == nil {
		t.Error("non-UTF-8 node ID accepted")
	}
	if _, err := MarshalSAN(nil, []net.IP{{1, 2, 3}}, nil); err == nil {
		t.Error("3-byte IP accepted")
	}
}

// rawTLV builds one DER element without the help of our encoder.
func rawTLV(t testing.TB, class, tag int, compound bool, content []byte) []byte {
	t.Helper()
	b, err := asn1.Marshal(asn1.RawValue{Class: class, Tag: tag, IsCompound: compound, Bytes: content})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestParseSANNodeIDs(t *testing.T) {
	oid := mustHex(t, "06092b0601040192081301")
	otherOID, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 3, 4})
	seq := func(parts ...[]byte) []byte { return rawTLV(t, 0, asn1.TagSequence, true, cat(parts...)) }
	otherName := func(typeID, value []byte) []byte { return rawTLV(t, 2, 0, true, cat(typeID, value)) }
	explicit := func(inner []byte) []byte { return rawTLV(t, 2, 0, true, inner) }
	str := func(tag int, s string) []byte { return rawTLV(t, 0, tag, false, []byte(s)) }

	long := strings.Repeat("n", 200)
	// Upstream's long-ID bug: the [0] content is the otherName SEQUENCE with
	// only two header bytes cut, leaving a long-form length byte behind.
	full := seq(oid, explicit(str(asn1.TagUTF8String, long)))
	buggy := seq(rawTLV(t, 2, 0, true, full[2:]))

	tests := []struct {
		name    string
		der     []byte
		want    []string
		wantErr bool
	}{
		{"one", seq(otherName(oid, explicit(str(asn1.TagUTF8String, "node1")))), []string{"node1"}, false},
		{"two plus dns", seq(rawTLV(t, 2, 2, false, []byte("a.example")),
			otherName(oid, explicit(str(asn1.TagUTF8String, "a"))),
			otherName(oid, explicit(str(asn1.TagUTF8String, "b")))), []string{"a", "b"}, false},
		{"printable string accepted", seq(otherName(oid, explicit(str(asn1.TagPrintableString, "node1")))), []string{"node1"}, false},
		{"other otherName type skipped", seq(otherName(otherOID, explicit(str(asn1.TagUTF8String, "x")))), nil, false},
		{"long id correct DER", seq(otherName(oid, explicit(str(asn1.TagUTF8String, long)))), []string{long}, false},
		{"upstream long id bug", buggy, nil, true},
		{"value not explicit [0]", seq(otherName(oid, str(asn1.TagUTF8String, "x"))), nil, true},
		{"value not a string", seq(otherName(oid, explicit(rawTLV(t, 0, asn1.TagInteger, false, []byte{1})))), nil, true},
		{"trailing data in otherName", seq(otherName(oid, cat(explicit(str(asn1.TagUTF8String, "x")), []byte{5, 0}))), nil, true},
		{"primitive otherName", seq(rawTLV(t, 2, 0, false, oid)), nil, true},
		{"not a sequence", str(asn1.TagUTF8String, "x"), nil, true},
		{"trailing data after sequence", cat(seq(), []byte{0}), nil, true},
		{"truncated", seq(otherName(oid, explicit(str(asn1.TagUTF8String, "node1"))))[:10], nil, true},
		{"empty input", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSANNodeIDs(tt.der)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVerifyPeerNodeIDErrors(t *testing.T) {
	p := getPKI(t)
	load := func(path string) *x509.Certificate {
		c, err := loadCertificate(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		cert    string
		node    string
		wantErr string
	}{
		{p.serverCert, "node1", ""},
		{p.serverCert, "Node1", "x509: certificate is valid for Receptor node ID node1, not Node1"},
		{p.multiCert, "node1b", ""},
		{p.multiCert, "node3", "x509: certificate is valid for Receptor node IDs node1, node1b, not node3"},
		{p.noIDCert, "node1", "x509: certificate is not valid for any Receptor node IDs, but wanted to match node1"},
	}
	for _, tt := range tests {
		err := VerifyPeerNodeID(load(tt.cert), tt.node)
		if got := errString(err); got != tt.wantErr {
			t.Errorf("VerifyPeerNodeID(%s, %s) = %q, want %q", tt.cert, tt.node, got, tt.wantErr)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestNodeIDFromAddr(t *testing.T) {
	for in, want := range map[string]string{"node2:abcdefgh": "node2", "node2": "node2", "a:b:c": "a", "": ""} {
		if got := NodeIDFromAddr(in); got != want {
			t.Errorf("NodeIDFromAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseSANNodeIDs(f *testing.F) {
	f.Add(mustHex(f, "30 16 a0 14 06 09 2b0601040192081301 a0 07 0c 05 6e6f646531"))
	f.Add(mustHex(f, "3029 820b6578616d706c652e636f6d 87047f000001 a014 06092b0601040192081301 a007 0c056e6f646531"))
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x03, 0xa0, 0x81})
	f.Fuzz(func(t *testing.T, der []byte) {
		ids, err := ParseSANNodeIDs(der)
		if err != nil {
			return
		}
		// Whatever parses must survive our encoder and parse back the same
		// (if the strings are encodable as UTF8String).
		ext, err := MarshalSAN(nil, nil, ids)
		if err != nil {
			return
		}
		again, err := ParseSANNodeIDs(ext.Value)
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("round trip of %q: %q, %v", ids, again, err)
		}
	})
}
