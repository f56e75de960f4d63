package config

import (
	"errors"
	"net/url"

	"github.com/redis/go-redis/v9"
)

// RedisClient builds the client REDIS_URL describes. Two forms:
//
//	redis://[user:pass@]host:port[/db]                    one Redis server
//	redis://[user:pass@]host:port?addr=host2:port2&addr=…  a Redis Cluster (seed nodes)
//
// rediss:// turns TLS on in both. A URL with at least one addr parameter
// (go-redis's cluster URL form) selects Redis Cluster; every script of the
// workers keeps its keys in one hash slot, so the same code runs on both.
func RedisClient(rawURL string) (redis.UniversalClient, error) {
	cluster, err := IsRedisClusterURL(rawURL)
	if err != nil {
		return nil, err
	}
	if cluster {
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, errors.New("is not a redis:// or rediss:// cluster URL (host:port?addr=host:port&addr=...)")
		}
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, errors.New("is not a redis:// or rediss:// URL")
	}
	return redis.NewClient(o), nil
}

// CheckRedisURL validates a REDIS_URL in either form without connecting.
func CheckRedisURL(rawURL string) error {
	c, err := RedisClient(rawURL)
	if err != nil {
		return err
	}
	return c.Close()
}

// IsRedisClusterURL reports whether rawURL names a Redis Cluster (it has an
// addr query parameter).
func IsRedisClusterURL(rawURL string) (bool, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return false, errors.New("is not a redis:// or rediss:// URL")
	}
	return u.Query().Has("addr"), nil
}
