package tlsconf

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"unicode/utf8"
)

var (
	// OIDSubjectAltName identifies the subjectAltName extension (RFC 5280).
	OIDSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	// OIDReceptorNodeID is the otherName type-id that carries a Receptor node ID.
	OIDReceptorNodeID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 2312, 19, 1}
)

// GeneralName context tags used in a subjectAltName (RFC 5280 §4.2.1.6).
const (
	gnOtherName = 0
	gnDNSName   = 2
	gnIPAddress = 7
)

// NodeIDsFromCert returns the Receptor node IDs carried in the certificate's
// subjectAltName extensions, in order of appearance.
func NodeIDsFromCert(cert *x509.Certificate) ([]string, error) {
	if cert == nil {
		return nil, errors.New("reading node IDs: nil certificate")
	}
	return NodeIDsFromExtensions(cert.Extensions)
}

// NodeIDsFromCSR returns the Receptor node IDs requested by a certificate request.
func NodeIDsFromCSR(req *x509.CertificateRequest) ([]string, error) {
	if req == nil {
		return nil, errors.New("reading node IDs: nil certificate request")
	}
	return NodeIDsFromExtensions(req.Extensions)
}

// NodeIDsFromExtensions scans every subjectAltName extension in exts.
func NodeIDsFromExtensions(exts []pkix.Extension) ([]string, error) {
	var ids []string
	for _, ext := range exts {
		if !ext.Id.Equal(OIDSubjectAltName) {
			continue
		}
		found, err := ParseSANNodeIDs(ext.Value)
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	return ids, nil
}

// ParseSANNodeIDs decodes a DER subjectAltName extension value and returns
// the node IDs of its Receptor otherName entries. Other GeneralNames are
// skipped; a malformed otherName is an error, as upstream's parser treats it
// (which is what makes certificates from upstream's long-ID encoding bug fail).
func ParseSANNodeIDs(der []byte) ([]string, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return nil, fmt.Errorf("parsing subjectAltName: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("parsing subjectAltName: trailing data")
	}
	if seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, errors.New("parsing subjectAltName: not a SEQUENCE")
	}
	var ids []string
	for body := seq.Bytes; len(body) > 0; {
		var gn asn1.RawValue
		body, err = asn1.Unmarshal(body, &gn)
		if err != nil {
			return nil, fmt.Errorf("parsing subjectAltName entry: %w", err)
		}
		if gn.Class != asn1.ClassContextSpecific || gn.Tag != gnOtherName {
			continue
		}
		id, ok, err := parseOtherName(gn)
		if err != nil {
			return nil, err
		}
		if ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// parseOtherName decodes OtherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
// (implicitly tagged [0]); ok is false for otherNames of other types.
func parseOtherName(gn asn1.RawValue) (id string, ok bool, err error) {
	if !gn.IsCompound {
		return "", false, errors.New("parsing otherName: not constructed")
	}
	var typeID asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(gn.Bytes, &typeID)
	if err != nil {
		return "", false, fmt.Errorf("parsing otherName type-id: %w", err)
	}
	if !typeID.Equal(OIDReceptorNodeID) {
		return "", false, nil
	}
	var val asn1.RawValue
	rest, err = asn1.Unmarshal(rest, &val)
	if err != nil {
		return "", false, fmt.Errorf("parsing Receptor node ID value: %w", err)
	}
	if len(rest) != 0 {
		return "", false, errors.New("parsing Receptor node ID: trailing data in otherName")
	}
	if val.Class != asn1.ClassContextSpecific || val.Tag != 0 || !val.IsCompound {
		return "", false, errors.New("parsing Receptor node ID: value is not [0] EXPLICIT")
	}
	// encoding/asn1 accepts UTF8String and the other ASN.1 string types here,
	// like the Go decoder upstream uses.
	rest, err = asn1.Unmarshal(val.Bytes, &id)
	if err != nil {
		return "", false, fmt.Errorf("parsing Receptor node ID string: %w", err)
	}
	if len(rest) != 0 {
		return "", false, errors.New("parsing Receptor node ID: trailing data after string")
	}
	return id, true, nil
}

// MarshalSAN builds a subjectAltName extension holding the DNS names, IP
// addresses and Receptor node IDs, in that order (the order upstream uses).
func MarshalSAN(dnsNames []string, ips []net.IP, nodeIDs []string) (pkix.Extension, error) {
	var body []byte
	for _, name := range dnsNames {
		if !isIA5(name) {
			return pkix.Extension{}, fmt.Errorf("invalid DNS name %q: not ASCII", name)
		}
		b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnDNSName, Bytes: []byte(name)})
		if err != nil {
			return pkix.Extension{}, fmt.Errorf("encoding DNS name %q: %w", name, err)
		}
		body = append(body, b...)
	}
	for _, ip := range ips {
		raw := ip.To4()
		if raw == nil {
			raw = ip.To16()
		}
		if raw == nil {
			return pkix.Extension{}, fmt.Errorf("invalid IP address %v", ip)
		}
		b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: gnIPAddress, Bytes: raw})
		if err != nil {
			return pkix.Extension{}, fmt.Errorf("encoding IP address %v: %w", ip, err)
		}
		body = append(body, b...)
	}
	for _, id := range nodeIDs {
		b, err := marshalNodeIDOtherName(id)
		if err != nil {
			return pkix.Extension{}, err
		}
		body = append(body, b...)
	}
	val, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encoding subjectAltName: %w", err)
	}
	return pkix.Extension{Id: OIDSubjectAltName, Value: val}, nil
}

// marshalNodeIDOtherName encodes one GeneralName otherName. Every length is
// produced by encoding/asn1, so long node IDs get correct long-form lengths
// (upstream's generator does not, docs/protocol.md §9.2).
func marshalNodeIDOtherName(id string) ([]byte, error) {
	if !utf8.ValidString(id) {
		return nil, fmt.Errorf("invalid node ID %q: not UTF-8", id)
	}
	str, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(id)})
	if err != nil {
		return nil, fmt.Errorf("encoding node ID %q: %w", id, err)
	}
	explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: str})
	if err != nil {
		return nil, fmt.Errorf("encoding node ID %q: %w", id, err)
	}
	oid, err := asn1.Marshal(OIDReceptorNodeID)
	if err != nil {
		return nil, fmt.Errorf("encoding node ID OID: %w", err)
	}
	gn, err := asn1.Marshal(asn1.RawValue{
		Class: asn1.ClassContextSpecific, Tag: gnOtherName, IsCompound: true,
		Bytes: append(oid, explicit...),
	})
	if err != nil {
		return nil, fmt.Errorf("encoding node ID %q: %w", id, err)
	}
	return gn, nil
}

func isIA5(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > 0x7f {
			return false
		}
	}
	return true
}
