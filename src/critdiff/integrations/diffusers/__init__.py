"""critdiff at the edge of HuggingFace ``diffusers`` (DESIGN.md section 7; ``docs/diffusers.md``).

- :mod:`.adapter`: a diffusers UNet + scheduler as a critdiff denoiser, loading from disk;
- :mod:`.schedulers`: the sampling plan (timesteps, sigmas) of a diffusers scheduler;
- :mod:`.loops`: that plan run by critdiff's samplers, step for step as diffusers runs it;
- :mod:`.pipeline`: ``sample_like_pipeline`` (image for image as ``DDPMPipeline``/``DDIMPipeline``);
- :mod:`.units`: t <-> logsnr <-> sigma <-> diffusers timestep <-> step index;
- :mod:`.callbacks`: a critdiff guidance schedule as a pipeline's ``callback_on_step_end``.

``diffusers`` itself is imported only by the functions that need it.
"""

from .adapter import (DiffusersDenoiser, diffusers_sigma_grid, load_diffusers,  # noqa: F401
                      load_diffusers_spec)
from .loops import run_plan  # noqa: F401
from .schedulers import SchedulerPlan, scheduler_plan  # noqa: F401
