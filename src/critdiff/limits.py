"""Upper bounds on size-like values read from flags and files (docs/reliability.md, R7).

A value beyond these bounds cannot describe a run this library is meant for; it is refused where it is read
(a flag, a data spec, a network or scheduler config), with one line naming it, before anything is allocated.
The bounds are generous: every configuration in the README, the demo and the benchmarks lies far inside them.
What a run will *cost* is judged separately, from the whole configuration, by
:mod:`critdiff.experiments.preflight`.
"""

MAX_SEED = 2 ** 63 - 1  # torch.Generator.manual_seed and numpy's SeedSequence both take any 63-bit integer
MAX_SIDE = 16384  # image height or width (pixels) in any config or data spec
MAX_CHANNELS = 256  # image channels
MAX_NET_WIDTH = 8192  # base width / channel count of a network
MAX_LEVELS = 16  # resolution levels of a UNet (len(channel_mult)), residual blocks per level
MAX_CLASS_ID = 9999  # largest class id (labels files, class-embedding tables)
MAX_TIMESTEPS = 1_000_000  # num_train_timesteps of a diffusers scheduler
