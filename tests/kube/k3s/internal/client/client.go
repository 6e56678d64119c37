// Package client talks to a k3s supervisor (:6443) the way k3s's own clients do: it
// fetches /cacerts, checks its hash against the token, then sends basic auth
// (k3s: pkg/clientaccess/token.go ParseAndValidateToken, get, put).
package client

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"opsbook/tests/kube/k3s/internal/token"
)

// Client is an authenticated supervisor client.
type Client struct {
	URL      string
	CAPEM    []byte
	Username string
	Password string
	http     *http.Client
}

// ErrCAHash is k3s's validateCAHash error.
type ErrCAHash struct{ Token, Cluster string }

func (e *ErrCAHash) Error() string {
	return fmt.Sprintf("token CA hash does not match the Cluster CA certificate hash: %s != %s", e.Token, e.Cluster)
}

// New validates the token against the server's CA and returns a client for user.
func New(serverURL, tokenText, user string, timeout time.Duration) (*Client, error) {
	if !strings.HasPrefix(serverURL, "https://") {
		return nil, fmt.Errorf("only https:// URLs are supported, invalid scheme: %s", serverURL)
	}
	t, err := token.Parse(tokenText)
	if err != nil {
		return nil, err
	}
	insecure := &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // fetch the CA; validated below
	}}
	ca, err := fetch(insecure, strings.TrimRight(serverURL, "/")+"/cacerts")
	if err != nil {
		return nil, err
	}
	if t.CAHash != "" {
		if got := token.CAHash(ca); got != t.CAHash {
			return nil, &ErrCAHash{Token: t.CAHash, Cluster: got}
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("CA cert validation failed: no certificate in /cacerts")
	}
	c := &Client{URL: strings.TrimRight(serverURL, "/"), CAPEM: ca, Username: user, Password: t.Password}
	c.http = &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return c, nil
}

func fetch(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return body, nil
}

// WithTimeout returns a copy whose requests time out after d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	hc := *c.http
	hc.Timeout = d
	cp.http = &hc
	return &cp
}

// Do sends a request with basic auth and returns the body of a 2xx answer. Other answers
// become errors: the message of a Kubernetes Status body, else "<url>: <status>"
// (k3s: pkg/clientaccess/token.go readBody).
func (c *Client) Do(method, path string, body any) ([]byte, error) {
	return c.do(method, path, body, nil)
}

// DoWithHeaders is Do with extra request headers.
func (c *Client) DoWithHeaders(method, path string, headers map[string]string) ([]byte, error) {
	return c.do(method, path, nil, headers)
}

func (c *Client) do(method, path string, body any, headers map[string]string) ([]byte, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, reader)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.Username, c.Password)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var status struct {
			Kind    string `json:"kind"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &status) == nil && status.Kind == "Status" && status.Message != "" {
			return nil, errors.New(status.Message)
		}
		return nil, fmt.Errorf("%s%s: %s", c.URL, path, resp.Status)
	}
	return data, nil
}

// Get is Do(GET).
func (c *Client) Get(path string) ([]byte, error) { return c.Do(http.MethodGet, path, nil) }
