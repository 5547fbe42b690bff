"""critdiff at the edge of HuggingFace ``diffusers`` (DESIGN.md section 7; ``docs/diffusers.md``).

- :mod:`.adapter`: a diffusers UNet / DiT + scheduler as a critdiff denoiser;
- :mod:`.conditioning`: text conditioning as tensors (``--cond``) or a locally encoded ``--prompt``;
- :mod:`.loading`: a ``save_pretrained`` folder (network, scheduler, VAE, weights variant) from disk;
- :mod:`.schedulers`: the sampling plan (timesteps, sigmas) of a diffusers scheduler;
- :mod:`.loops`: that plan run by critdiff's samplers, step for step as diffusers runs it;
- :mod:`.pndm`: ``PNDMScheduler``'s loop (its warm-up and timestep arithmetic are not a grid method);
- :mod:`.pipeline`: ``sample_like_pipeline`` (image for image as ``DDPMPipeline``/``DDIMPipeline``/``PNDMPipeline``,
  ``StableDiffusionPipeline`` and ``DiTPipeline``);
- :mod:`.units`: t <-> logsnr <-> sigma <-> diffusers timestep <-> step index;
- :mod:`.callbacks`: a critdiff guidance schedule as a pipeline's ``callback_on_step_end``.

``diffusers`` itself is imported only by the functions that need it.
"""

from .adapter import DiffusersDenoiser, diffusers_sigma_grid  # noqa: F401
from .late_start import PipelineLateStart, pipeline_late_start  # noqa: F401
from .conditioning import TextConditioning, encode_prompt, load_cond, save_cond  # noqa: F401
from .loading import load_diffusers, load_diffusers_spec  # noqa: F401
from .loops import run_plan  # noqa: F401
from .schedulers import SchedulerPlan, scheduler_plan  # noqa: F401
