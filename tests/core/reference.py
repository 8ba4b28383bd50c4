"""Independent float64 NumPy reference implementations for the tests of ``ppox.core``.

These are written from the *definitions* (explicit sums and loops), deliberately not as
translations of the JAX code: no reverse scans, no recursions shared with the library.
Arrays are time-major [T, ...]; trailing dimensions are independent environments.
"""

from __future__ import annotations

import math

import numpy as np


# --------------------------------------------------------------------------- helpers


def _flat(x):
    """float64 copy shaped [T, M] (all trailing dimensions flattened into M columns)."""
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[0], -1)


def _flags(x):
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1).astype(bool)


def _episode_ends_at(k, col, terminated, truncated, horizon):
    """True where the walk along column ``col`` must stop after step k."""
    return bool(terminated[k, col] or truncated[k, col] or k == horizon - 1)


# --------------------------------------------------------------------------- advantages


def td_residuals(rewards, values, next_values, terminated, gamma):
    """delta_t = r_t + gamma * V(s_{t+1}) - V(s_t), with V(s_{t+1}) := 0 when terminated."""
    shape = np.shape(rewards)
    r, v, nv, term = _flat(rewards), _flat(values), _flat(next_values), _flags(terminated)
    out = np.zeros_like(r)
    for t in range(r.shape[0]):
        for c in range(r.shape[1]):
            bootstrap = 0.0 if term[t, c] else nv[t, c]
            out[t, c] = r[t, c] + gamma * bootstrap - v[t, c]
    return out.reshape(shape)


def gae(rewards, values, next_values, terminated, truncated, gamma, gae_lambda):
    """A_t = sum_{l >= 0} (gamma lambda)^l delta_{t+l}, the sum running to the end of the
    episode (a termination or truncation at step t+l is the last term) or of the batch."""
    shape = np.shape(rewards)
    deltas = _flat(td_residuals(rewards, values, next_values, terminated, gamma))
    term, trunc = _flags(terminated), _flags(truncated)
    horizon, cols = deltas.shape
    out = np.zeros_like(deltas)
    for t in range(horizon):
        for c in range(cols):
            total = 0.0
            l = 0
            while True:
                k = t + l
                total += (gamma * gae_lambda) ** l * deltas[k, c]
                if _episode_ends_at(k, c, term, trunc, horizon):
                    break
                l += 1
            out[t, c] = total
    return out.reshape(shape)


def discounted_returns(rewards, next_values, terminated, truncated, gamma):
    """G_t = sum_k gamma^k r_{t+k} to the end of the episode, plus gamma^{k+1} V(s_{t+k+1})
    when the episode is cut (truncation or end of batch) rather than terminated at t+k."""
    shape = np.shape(rewards)
    r, nv = _flat(rewards), _flat(next_values)
    term, trunc = _flags(terminated), _flags(truncated)
    horizon, cols = r.shape
    out = np.zeros_like(r)
    for t in range(horizon):
        for c in range(cols):
            total = 0.0
            k = t
            while True:
                total += gamma ** (k - t) * r[k, c]
                if term[k, c]:
                    break
                if trunc[k, c] or k == horizon - 1:
                    total += gamma ** (k - t + 1) * nv[k, c]
                    break
                k += 1
            out[t, c] = total
    return out.reshape(shape)


def nstep_advantages(rewards, values, next_values, terminated, truncated, gamma, n):
    """sum_{l<k} gamma^l r_{t+l} + gamma^k V(s_{t+k}) - V(s_t), walking forward at most n
    steps; the walk stops early at the end of the episode or batch, and a termination
    adds no bootstrap value."""
    if n < 1:
        raise ValueError(n)
    shape = np.shape(rewards)
    r, v, nv = _flat(rewards), _flat(values), _flat(next_values)
    term, trunc = _flags(terminated), _flags(truncated)
    horizon, cols = r.shape
    out = np.zeros_like(r)
    for t in range(horizon):
        for c in range(cols):
            total = 0.0
            for l in range(n):
                k = t + l
                total += gamma**l * r[k, c]
                if term[k, c]:
                    break
                if trunc[k, c] or k == horizon - 1 or l == n - 1:
                    total += gamma ** (l + 1) * nv[k, c]
                    break
            out[t, c] = total - v[t, c]
    return out.reshape(shape)


# --------------------------------------------------------------------------- losses


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_coef):
    lp, olp, adv = (np.asarray(x, np.float64).ravel() for x in (log_prob, old_log_prob, advantages))
    out = np.zeros_like(lp)
    for i in range(lp.size):
        ratio = math.exp(lp[i] - olp[i])
        if clip_coef is None:
            out[i] = ratio * adv[i]
        else:
            clipped_ratio = min(max(ratio, 1.0 - clip_coef), 1.0 + clip_coef)
            out[i] = min(ratio * adv[i], clipped_ratio * adv[i])
    return out.reshape(np.shape(log_prob))


def value_loss(values, old_values, returns, clip_coef):
    v, ov, g = (np.asarray(x, np.float64).ravel() for x in (values, old_values, returns))
    out = np.zeros_like(v)
    for i in range(v.size):
        unclipped = (v[i] - g[i]) ** 2
        if clip_coef is None:
            out[i] = unclipped
        else:
            step = min(max(v[i] - ov[i], -clip_coef), clip_coef)
            out[i] = max(unclipped, (ov[i] + step - g[i]) ** 2)
    return out.reshape(np.shape(values))


def approx_kl(log_prob, old_log_prob):
    lp, olp = np.asarray(log_prob, np.float64).ravel(), np.asarray(old_log_prob, np.float64).ravel()
    terms = [(math.exp(a - b) - 1.0) - (a - b) for a, b in zip(lp, olp)]
    return sum(terms) / len(terms)


def clip_fraction(log_prob, old_log_prob, clip_coef):
    lp, olp = np.asarray(log_prob, np.float64).ravel(), np.asarray(old_log_prob, np.float64).ravel()
    outside = [abs(math.exp(a - b) - 1.0) > clip_coef for a, b in zip(lp, olp)]
    return sum(outside) / len(outside)


def _variance(x):
    x = [float(v) for v in np.asarray(x, np.float64).ravel()]
    mean = sum(x) / len(x)
    return sum((v - mean) ** 2 for v in x) / len(x)


def explained_variance(values, returns):
    var_g = _variance(returns)
    if var_g == 0.0:
        return math.nan
    residual = np.asarray(returns, np.float64) - np.asarray(values, np.float64)
    return 1.0 - _variance(residual) / var_g


# --------------------------------------------------------------------------- distributions


def log_softmax(logits, mask=None):
    """float64 log-probabilities over the last axis; masked (False) entries get -inf."""
    z = np.asarray(logits, np.float64)
    if mask is not None:
        z = np.where(np.asarray(mask, bool), z, -np.inf)
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape[:-1]):
        row = z[idx]
        m = np.max(row)
        norm = m + math.log(sum(math.exp(v - m) for v in row if v != -np.inf))
        out[idx] = row - norm
    return out


def categorical_entropy(logits, mask=None):
    logp = log_softmax(logits, mask)
    out = np.zeros(logp.shape[:-1])
    for idx in np.ndindex(logp.shape[:-1]):
        out[idx] = -sum(math.exp(lp) * lp for lp in logp[idx] if lp != -np.inf)
    return out


def gaussian_log_prob(action, mean, log_std):
    a, mu = np.asarray(action, np.float64), np.asarray(mean, np.float64)
    log_std = np.broadcast_to(np.asarray(log_std, np.float64), mu.shape)
    std = np.exp(log_std)
    density = np.exp(-((a - mu) ** 2) / (2 * std**2)) / (std * math.sqrt(2 * math.pi))
    return np.sum(np.log(density), axis=-1)


def gaussian_entropy(mean, log_std):
    mu = np.asarray(mean, np.float64)
    std = np.exp(np.broadcast_to(np.asarray(log_std, np.float64), mu.shape))
    # differential entropy of N(mu, s^2) is log(s sqrt(2 pi e)), summed over dimensions
    return np.sum(np.log(std * math.sqrt(2 * math.pi * math.e)), axis=-1)


# --------------------------------------------------------------------------- normalisation

PRIOR_COUNT = 1e-4  # RunningMeanStd.create starts from a pseudo-sample: mean 0, var 1, count 1e-4


def pooled_stats(samples, prior_mean=0.0, prior_var=1.0, prior_count=PRIOR_COUNT):
    """Mean and (population) variance of all ``samples`` [S, ...] pooled with a prior
    pseudo-sample of weight ``prior_count``, straight from the moments:
    mean = (n0 m0 + sum x) / (n0 + S), var = (n0 (v0 + m0^2) + sum x^2) / (n0 + S) - mean^2."""
    x = np.asarray(samples, np.float64)
    total = prior_count + x.shape[0]
    mean = (prior_count * prior_mean + x.sum(axis=0)) / total
    second = (prior_count * (prior_var + prior_mean**2) + (x**2).sum(axis=0)) / total
    return mean, second - mean**2, total


def normalize(mean, var, x, clip, eps):
    z = (np.asarray(x, np.float64) - mean) / np.sqrt(np.asarray(var, np.float64) + eps)
    return np.minimum(np.maximum(z, -clip), clip)


def scale_rewards(rewards, dones, gamma, clip=10.0, eps=1e-8):
    """Walk a [T, N] reward sequence through reward scaling.

    Per env: R_t = r_t + gamma R_{t-1}, with R reset to 0 after a done step. Every R_t
    ever produced (all envs, all steps so far, including step t) feeds one pooled
    statistic; r_t is divided by its std. Returns (scaled [T, N], final R [N], final var).
    """
    r = np.asarray(rewards, np.float64)
    d = np.asarray(dones, bool)
    horizon, num_envs = r.shape
    running = np.zeros(num_envs)
    seen = []
    scaled = np.zeros_like(r)
    var = 1.0
    for t in range(horizon):
        for e in range(num_envs):
            running[e] = gamma * running[e] + r[t, e]
        seen.extend(running.tolist())
        _, var, _ = pooled_stats(np.array(seen))
        for e in range(num_envs):
            scaled[t, e] = min(max(r[t, e] / math.sqrt(var + eps), -clip), clip)
        for e in range(num_envs):
            if d[t, e]:
                running[e] = 0.0
    return scaled, running, var
