"""icdmin: a minimal, auditable reference for in-context denoising with one-layer transformers.

Smart, Bietti & Sengupta, "In-context denoising with one-layer transformers: connections between attention and
associative memory retrieval", ICML 2025 (arXiv 2502.05164).

Conventions (see README): tokens are columns; a context ``X`` is ``(n, L)`` or ``(B, n, L)`` with ``L`` clean
tokens; the query ``x_tilde`` is ``(n,)`` or ``(B, n)``; an MSE is the mean over prompts and coordinates.
"""

__version__ = "0.1.0"

from ._arrays import mse
from .dam import (
    DescentResult,
    descend,
    descent_step,
    energy,
    energy_grad,
    energy_hessian,
    is_gradient_flow,
    linear_descent_step,
    linear_energy,
    linear_energy_grad,
    lse,
    softmax,
    update_jacobian,
)
from .retrieval import (
    circle_trajectories,
    energy_along_step,
    energy_landscape,
    format_retrieval_table,
    retrieval_comparison,
)
from .optim import AdamState, SGDState, adam_step, sgd_step, step_schedule
from .training import (
    TrainConfig,
    TrainResult,
    evaluate,
    fresh_prompts,
    init_weights,
    mean_abs_offdiagonal,
    mean_diagonal,
    paper_epochs,
    split_prompts,
    train,
)
from .tasks import GMMTask, LinearTask, Prompts, SphereTask, haar_basis
from .bayes import (
    bayes_risk_linear,
    bessel_ratio,
    linear_risk,
    mc_bayes_risk,
    optimal_linear_gamma,
    posterior_mean_gmm,
    posterior_mean_gmm_general,
    posterior_mean_linear,
    posterior_mean_sphere,
)
from .baselines import (
    context_mean_estimator,
    linear_attention_estimator,
    projection_estimator,
    query_estimator,
    softmax_attention_estimator,
    sphere_projection_estimator,
    tweedie_estimator,
    zero_estimator,
)

from .layer import (
    KINDS,
    AttentionCache,
    attention,
    attention_backward,
    attention_forward,
    attention_weights,
)
from .loss import loss_and_grads, loss_and_grads_identity, loss_and_grads_numpy
from .gaussian_attention import attention_gaussian, loss_and_grads_gaussian


def __getattr__(name: str):
    """``reproduce`` and ``EXPERIMENTS`` belong to the reproduction layer, imported on first use only: ``import icdmin``
    loads the core (tasks, Bayes, baselines, energy, attention, training) and nothing else."""
    if name == "EXPERIMENTS":
        from .experiments import EXPERIMENTS

        return EXPERIMENTS
    if name == "reproduce":
        from .runner import reproduce

        return reproduce
    raise AttributeError(f"module 'icdmin' has no attribute {name!r}")
