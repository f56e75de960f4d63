package dispatch

import (
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

type (
	redisDialHook     = redis.DialHook
	redisProcessHook  = redis.ProcessHook
	redisPipelineHook = redis.ProcessPipelineHook
	redisCmder        = redis.Cmder
	atomicInt         = atomic.Int64
)
