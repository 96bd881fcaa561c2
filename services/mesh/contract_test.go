package mesh

import (
	"net"
	"testing"
)

func TestAddrOf(t *testing.T) {
	tests := []struct {
		in      net.Addr
		want    Addr
		wantErr bool
	}{
		{Addr{Node: "a", Service: "svc"}, Addr{Node: "a", Service: "svc"}, false},
		{&Addr{Node: "b", Service: "x"}, Addr{Node: "b", Service: "x"}, false},
		{&net.UnixAddr{Name: "c:d:e", Net: "unix"}, Addr{Node: "c", Service: "d:e"}, false},
		{&net.UnixAddr{Name: "nocolon", Net: "unix"}, Addr{Node: "nocolon"}, true},
		{nil, Addr{}, true},
	}
	for _, tt := range tests {
		got, err := AddrOf(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("AddrOf(%v) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
