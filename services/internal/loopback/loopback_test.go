package loopback

import "testing"

func TestHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "example.com": false,
		"localhost.example.com": false, "::ffff:10.0.0.1": false,
	} {
		if got := Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestListenHost(t *testing.T) {
	for in, want := range map[string]string{
		"27199": "0.0.0.0", ":27199": "", "0.0.0.0:1": "0.0.0.0", "127.0.0.1:1": "127.0.0.1",
		"[::1]:1": "::1", "[::]:1": "::", "localhost:1": "localhost",
	} {
		got, err := ListenHost(in)
		if err != nil || got != want {
			t.Errorf("ListenHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ListenHost("a:b:c"); err == nil {
		t.Error("ListenHost(a:b:c) accepted")
	}
}
