"""Probes: measurements of the critical regime on ANY denoiser (DESIGN.md section 4).

- :mod:`.spectral`: Fourier diagonal of the denoiser/score Jacobians and the stiffness ``kappa(k)`` from
  random-probe JVPs (exact impulse route for circulant Jacobians; dense oracle);
- :mod:`.correlations`: structure factor ``S(k)``, ``C(r)``, second-moment lengths ``xi_zero`` (about ``k = 0``) and ``xi_peak`` (about the peak), Ornstein-Zernike fit;
- :mod:`.trajectory`: all of the above along a sampler run (a callback observer);
- :mod:`.susceptibility`: ``chi(t)``, the response of the final sample to a kick, with common random numbers;
- :mod:`.decision`: entropy of the class posterior along trajectories and the decision time;
- :mod:`.critical_time`: ``t_c`` from each signal with bootstrap intervals, and their combination;
- :mod:`.linear_response`: growth of small fluctuations about the sampler's symmetric branch (the measured
  counterpart of the linear-stability theory) and the JVP stiffness there.
"""

from .bootstrap import (mean_ci, mean_interval, paired_mean_diff, paired_stat_diff, percentile_ci, replicates,
                        stratified_indices)
from .correlations import (OZFit, StructureFactor, correlation_function, ornstein_zernike, periodograms,
                           structure_factor, xi_peak, xi_zero)
from .critical_time import (EDGE_RTOL, CombinedCriticalTime, CriticalTime, at_grid_edge, combine, estimate,
                            extremum, from_chi, from_samples, from_stiffness, from_xi, zero_crossing)
from .linear_response import (GrowthRun, LinearResponse, branch_stiffness, from_branch_stiffness, from_growth,
                              growth_run, linear_response)
from .decision import (Decision, EntropyRecorder, classifier_logits, decision_time, entropy, gaussian_logits,
                       steepest_drop)
from .spectral import SpectralProbe, jvp, probe_vectors, spectral_probe
from .susceptibility import Susceptibility, kick_fields, response_spread, susceptibility
from ..times import schedule_times
from .trajectory import Trajectory, TrajectoryProbe, probe_trajectory

__all__ = [
    "SpectralProbe", "spectral_probe", "jvp", "probe_vectors",
    "StructureFactor", "structure_factor", "periodograms", "correlation_function", "xi_zero", "xi_peak",
    "OZFit", "ornstein_zernike",
    "Trajectory", "TrajectoryProbe", "probe_trajectory", "schedule_times",
    "Susceptibility", "susceptibility", "kick_fields", "response_spread",
    "Decision", "EntropyRecorder", "entropy", "classifier_logits", "gaussian_logits", "decision_time", "steepest_drop",
    "CriticalTime", "CombinedCriticalTime", "estimate", "from_samples", "from_stiffness", "from_xi", "from_chi",
    "combine", "zero_crossing", "extremum", "at_grid_edge", "EDGE_RTOL",
    "GrowthRun", "LinearResponse", "growth_run", "linear_response", "from_growth", "branch_stiffness",
    "from_branch_stiffness",
    "replicates", "percentile_ci", "mean_ci", "mean_interval", "paired_mean_diff", "paired_stat_diff",
    "stratified_indices",
]
