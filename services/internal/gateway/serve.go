package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// Server timeouts. There is deliberately no ReadTimeout or WriteTimeout:
// either would cut off a long GET /v1/work/{id}/results stream; bodies are
// bounded in size by New instead.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// ShutdownTimeout is how long Serve lets running requests finish.
	ShutdownTimeout = 5 * time.Second
)

// Serve serves h on lis until ctx is done, then shuts down gracefully
// (closing whatever still runs after ShutdownTimeout). With tlsConf set it
// serves HTTPS (HTTP/2 and HTTP/1.1) with that config, cloned; client
// certificates follow the config. Serve owns lis and closes it. logger nil
// means slog.Default().
func Serve(ctx context.Context, h http.Handler, lis net.Listener, tlsConf *tls.Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			// ServeTLS offers h2 only in the config it is given; Derive
			// also offers it in the configs a reloaded certificate store
			// chooses per connection (tlsconf.Store.Server), which would
			// otherwise fall back to HTTP/1.1 after a reload.
			srv.TLSConfig = tlsconf.Derive(tlsConf, func(c *tls.Config) {
				if len(c.NextProtos) == 0 {
					c.NextProtos = []string{"h2", "http/1.1"}
				}
			})
			errc <- srv.ServeTLS(lis, "", "")
			return
		}
		errc <- srv.Serve(lis)
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serving REST gateway on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("REST gateway did not stop in time; closing connections", "address", lis.Addr().String(), "err", err)
		_ = srv.Close()
	}
	<-errc
	return nil
}
