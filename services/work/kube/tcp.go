package kube

import (
	"context"
	"errors"
	"io"
	"net"
	"os"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// runTCP is streammethod tcp, as upstream: listen on the first non-loopback
// address, create the pod with RECEPTOR_HOST and RECEPTOR_PORT, accept one
// connection, send stdin, half-close, copy the output to stdout. The unit
// finishes from the pod's status once the output ended.
func (e *Execution) runTCP(ex extraData) error {
	host, err := defaultAddress()
	if err != nil {
		return detailf("Error listening: %s", err)
	}
	var lc net.ListenConfig
	li, err := lc.Listen(e.ctx, "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return detailf("Error listening: %s", err)
	}
	defer li.Close()
	stop := context.AfterFunc(e.ctx, func() { li.Close() })
	defer stop()
	lhost, lport, err := net.SplitHostPort(li.Addr().String())
	if err != nil {
		return detailf("Error listening: %s", err)
	}
	pod, err := e.createPod(&ex, map[string]string{"RECEPTOR_HOST": lhost, "RECEPTOR_PORT": lport})
	if err != nil {
		return detailf("Error creating pod: %s", err)
	}
	w := e.watchPod(pod.Namespace, pod.Name)
	defer w.stop()
	conn, err := li.Accept()
	if err != nil {
		return detailf("Error accepting: %s", err)
	}
	defer conn.Close()
	stdin, err := os.Open(e.dir.Path(unit.StdinFile))
	if err != nil {
		return detailf("Error opening stdin file: %s", err)
	}
	defer stdin.Close()
	if err := e.setState(unit.Pending, "Sending stdin to pod"); err != nil {
		return err
	}
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		if err == nil {
			err = e.setState(unit.Running, "Pod Running")
		}
		sent <- err
	}()
	out, err := os.OpenFile(e.dir.Path(unit.StdoutFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return detailf("Error opening stdout file: %s", err)
	}
	defer out.Close()
	sw := &stdoutWriter{e: e, f: out}
	_, cerr := io.Copy(sw, conn)
	if ferr := sw.flush(); ferr != nil {
		return ferr
	}
	if serr := <-sent; serr != nil {
		return detailf("Error sending stdin to pod: %s", serr)
	}
	if cerr != nil {
		return detailf("Error reading stdout from pod: %s", cerr)
	}
	for {
		pod, changed, werr := w.latest()
		if werr != nil {
			return detailf("Error with pod's stdout: %s", werr)
		}
		if pod != nil && outcome(pod) == podFinished {
			return e.finish(pod, sw.size)
		}
		select {
		case <-changed:
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
	}
}

// defaultAddress is the first address of an up, non-loopback interface.
func defaultAddress() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, nif := range ifs {
		if nif.Flags&net.FlagUp == 0 || nif.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := nif.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && !ip.IP.IsLoopback() && !ip.IP.IsMulticast() {
				return ip.IP.String(), nil
			}
		}
	}
	return "", errors.New("could not determine local address")
}
