"""``synthperf flows ...``: train | simulate | roundtrip-mse | fid | coverage | dataset-tool.

Toy data come from :mod:`synthperf.flows.toy_data`; image data from ZIP archives written by
``dataset-tool`` (e.g. the bundled digits). Networks are safetensors + JSON checkpoints.

Every command checks all its options before any work (through the library's own checks) and
reports a user error (bad option, missing or corrupt file, I/O error) as one ``error: ...``
line on stderr with exit status 2, never a traceback. Output files are written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from .._cli_errors import user_errors

from .._io import atomic_write_text

app = typer.Typer(name="flows", help="Inflationary flows: training, pfODE simulations and metrics.",
                  no_args_is_help=True, add_completion=False)


@app.command("train")
@user_errors
def train_command(
    outdir: Path = typer.Option(..., help="Checkpoint folder."),
    data_name: Optional[str] = typer.Option(None, help="Toy dataset name (circles, moons, ...)."),
    data: Optional[Path] = typer.Option(None, help="Image ZIP (dataset-tool output) instead of a toy."),
    dims_to_keep: Optional[int] = typer.Option(None, help="k (default: all = PRP)."),
    rho: float = 1.0, gamma0: float = 5e-4, g_type: str = "orig", inflation_gap: float = 1.0, end_vars: float = 1.0,
    tmax: float = 7.01, steps: int = 2000, batch: int = 512, lr: float = 2e-3, width: int = 128,
    seed: int = 0, resume: Optional[Path] = typer.Option(None, help="Checkpoint to resume from."),
    class_conditional: bool = typer.Option(False, help="Label-conditioned denoiser (image ZIP labels)."),
    center: bool = typer.Option(False, help="Subtract the training mean (deviation from spec §1.3)."),
    backbone: str = typer.Option("auto", help="Images: auto (mlp for d <= 256) | mlp (ES) | unet (IS)."),
    checkpoint_every: int = typer.Option(0, help="Steps between resume checkpoints; 0 = every epoch."),
    fresh: bool = typer.Option(False, help="Ignore checkpoints in --outdir (default: a killed run resumes)."),
) -> None:
    """Train a preconditioned denoiser (toy MLP in ES; images: ES MLP or IS UNet), see :func:`synthperf.flows.train`."""
    from .api import train

    if (data_name is None) == (data is None):
        raise ValueError("give exactly one of --data-name (toy) or --data (image ZIP)")
    if fresh and resume is not None:
        raise ValueError("give at most one of --fresh and --resume")
    res = train(outdir, data_name=data_name, data=data, dims_to_keep=dims_to_keep, rho=rho, gamma0=gamma0,
                g_type=g_type, inflation_gap=inflation_gap, end_vars=end_vars, tmax=tmax, steps=steps, batch=batch,
                lr=lr, width=width, seed=seed, resume=False if fresh else resume, class_conditional=class_conditional,
                center=center, backbone=backbone, checkpoint_every=checkpoint_every)
    typer.echo(f"trained {res.steps} steps in {res.seconds:.1f} s; final loss {res.final_loss:.4f}; "
               f"checkpoint {res.checkpoint}")


@app.command("simulate")
@user_errors
def simulate_command(
    save_dir: Path = typer.Option(..., help="Output folder for .npz and params .json."),
    data_name: Optional[str] = typer.Option(None, help="Toy dataset (default circles when --data is not given)."),
    data: Optional[Path] = typer.Option(None, help="Image ZIP instead of a toy (pixels in [-1, 1])."),
    network: Optional[Path] = typer.Option(None, help="Checkpoint; omit for the discrete score."),
    dims_to_keep: Optional[int] = None, rho: float = 1.0, gamma0: float = 5e-4, g_type: str = "orig",
    inflation_gap: float = 1.0, end_vars: float = 1.0, steps: int = 1501, h: float = 1e-2,
    grid: str = typer.Option("ifs", help="ifs (toys, T = steps*h) | vp_ode (images, --end-time)."),
    end_time: float = 15.01, eps_s: float = 1e-2,
    eps: Optional[float] = typer.Option(None, help="PRR latent variance of the compressed dims; default: the "
                                        "melt-matched s(T)^2 (xi + gamma(T)) (upstream's 1 explodes, a warning says so)."),
    save_freq: int = 10, total_samples: int = 2000, solver: str = "euler", mode: str = "stable",
    backend: Optional[str] = None, seed: int = 0,
    checkpoint_every: Optional[int] = typer.Option(None, help="Integration steps between checkpoints "
                                                   "(default max(100, save_freq); 0 = none); a killed run resumes."),
) -> None:
    """melt, roundtrip and gen simulations, discrete score or trained network (:func:`synthperf.flows.simulate`)."""
    from .api import simulate

    if data_name is not None and data is not None:
        raise ValueError("give at most one of --data-name (toy) or --data (image ZIP)")
    res = simulate(save_dir, data_name=(data_name or "circles") if data is None else None,
                   data=data, network=network, dims_to_keep=dims_to_keep, rho=rho, gamma0=gamma0, g_type=g_type,
                   inflation_gap=inflation_gap, end_vars=end_vars, steps=steps, h=h, grid=grid, end_time=end_time,
                   eps_s=eps_s, eps=eps, save_freq=save_freq, total_samples=total_samples, solver=solver, mode=mode,
                   backend=backend, seed=seed, checkpoint_every=checkpoint_every)
    gen = res.final("gen")
    typer.echo(f"wrote melt/rdtrp/gen results ({res.schedule.name}, {res.x.shape[0]} points) to {save_dir}; "
               f"roundtrip MSE {res.roundtrip_mse:.3g} (data units); gen std {gen.std():.3g} (data std {res.x.std():.3g})")


@app.command("roundtrip-mse")
@user_errors
def roundtrip_mse_command(
    network: Path = typer.Option(...), data: Path = typer.Option(..., help="Image ZIP."),
    out: Path = typer.Option(..., help="Output JSON."), total_samples: int = 500, n_iters: int = 256,
    end_time: float = 15.01, eps_s: float = 1e-2, solver: str = "heun", uint8_wrap: bool = False, seed: int = 42,
) -> None:
    """Melt then generate back (vp_ode grid) and report the pixel MSE (0-255 levels^2)."""
    from .dataset_tool import ImageZipDataset
    from .metrics import roundtrip_mse
    from .pfode import DenoiserFlow, from_latent, melt, time_grid
    from .._validation import positive_int
    from .api import check_simulate_args
    from .training import load_network

    check_simulate_args(steps=n_iters, h=1.0, grid="vp_ode", end_time=end_time, eps_s=eps_s, eps=None, save_freq=1,
                        total_samples=total_samples, solver=solver, mode="stable", backend=None, seed=seed)
    positive_int(total_samples, "total_samples")
    net = load_network(network)
    W = net.W.double().numpy()
    with ImageZipDataset(data) as ds:
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(ds))[:total_samples]
        x = np.stack([ds.to_float(int(i)) for i in idx]).reshape(len(idx), -1).astype(np.float64)
        labels = ds.labels[idx]
    mean = np.zeros(x.shape[1]) if net.data_mean is None else net.data_mean  # centred networks (digits)
    flow = DenoiserFlow(net.denoise, labels=labels if net.num_classes else None)
    t = time_grid("vp_ode", "melt", n_iters, end_time=end_time, eps_s=eps_s)
    m = melt(flow, net.schedule, W, x - mean, t, solver=solver, save_every=n_iters)
    r = from_latent(flow, net.schedule, W, m.final_es, t[::-1].copy(), solver=solver, save_every=n_iters)
    res = {"mse": roundtrip_mse(x, r.tilde_xs[-1] + mean, uint8_wrap=uint8_wrap), "uint8_wrap": uint8_wrap,
           "total_samples": int(len(idx)), "n_iters": n_iters, "solver": solver, "seed": seed, "network": str(network)}
    atomic_write_text(out, json.dumps(res, indent=2))
    typer.echo(json.dumps(res))


@app.command("fid")
@user_errors
def fid_command(
    features_a: Path = typer.Option(..., help=".npy features [n, k] (or an image ZIP with --extractor)."),
    features_b: Path = typer.Option(...), extractor: Optional[Path] = typer.Option(
        None, help="Local .safetensors MLP feature extractor ('0.weight', '0.bias', '2.weight', ...; ReLU between)."),
) -> None:
    """Frechet distance between two feature sets (or two image ZIPs through a local extractor)."""
    from .metrics import frechet_distance_from_features, frechet_distance_with_extractor, load_local_feature_extractor

    if extractor is None:
        fd = frechet_distance_from_features(np.load(features_a, allow_pickle=False), np.load(features_b, allow_pickle=False))
    else:
        from .dataset_tool import ImageZipDataset

        model = load_local_feature_extractor(extractor)
        with ImageZipDataset(features_a) as a, ImageZipDataset(features_b) as b:
            fd = frechet_distance_with_extractor(model, a.array(), b.array())
    typer.echo(f"{fd:.6f}")


@app.command("coverage")
@user_errors
def coverage_command(
    out: Path = typer.Option(..., help="Output JSON."), data_name: str = "circles",
    network: Optional[Path] = typer.Option(None, help="Checkpoint; omit for the discrete score."),
    dims_to_keep: Optional[int] = None, rho: float = 2.0, total_samples: int = 2000, n_test: int = 20000,
    n_boundary: int = 200, eps: float = 1e-2, steps: int = 701, h: float = 1e-2, seed: int = 0,
) -> None:
    """Alpha-shape (2-D) / mesh (3-D) coverage of latent credible shells mapped to data space."""
    from .metrics import coverage_experiment
    from .pfode import DenoiserFlow, DiscreteFlow
    from .schedules import InflationSchedule
    from .._validation import positive_int
    from .api import check_schedule_args, check_simulate_args
    from .toy_data import TOY_DATASETS, make_toy

    check_simulate_args(steps=steps, h=h, grid="ifs", end_time=1.0, eps_s=0.0, eps=eps, save_freq=1,
                        total_samples=total_samples, solver="euler", mode="stable", backend=None, seed=seed)
    check_schedule_args(dims_to_keep=dims_to_keep, rho=rho, gamma0=5e-4, g_type="orig", inflation_gap=1.0,
                        end_vars=1.0)
    positive_int(n_test, "n_test")
    positive_int(n_boundary, "n_boundary", minimum=4)
    if network is None and data_name not in TOY_DATASETS:
        raise ValueError(f"data_name must be one of the toy datasets {sorted(TOY_DATASETS)}, got {data_name!r}")
    if network is not None and not network.is_file():
        raise FileNotFoundError(f"network {str(network)!r} does not exist (or is not a file)")
    if network is None:
        x = make_toy(data_name, total_samples, seed=seed)
        sch, W = InflationSchedule.from_data(x, dims_to_keep=dims_to_keep, rho=rho)
        flow = DiscreteFlow(x @ W)
    else:
        from .training import load_network

        net = load_network(network)
        sch, W, flow = net.schedule, net.W.double().numpy(), DenoiserFlow(net.denoise)
    res = coverage_experiment(flow, sch, W, n_test=n_test, n_boundary=n_boundary, eps=eps, steps=steps, h=h, seed=seed)
    atomic_write_text(out, json.dumps({k: np.asarray(v).tolist() for k, v in res.items()}, indent=2))
    for i, r in enumerate(res["radii"]):
        typer.echo(f"r={r:.2f} ideal={res['ideal'][i]:6.2f} latent={res['latent'][i]:6.2f} "
                   f"data={res['data'][i]:6.2f} roundtrip={res['latent_roundtrip'][i]:6.2f}")


@app.command("dataset-tool")
@user_errors
def dataset_tool_command(
    source: str = typer.Option(..., help="Image folder, or 'digits' for scikit-learn's bundled digits."),
    dest: Path = typer.Option(..., help="Output ZIP."), resolution: Optional[int] = None,
    max_images: Optional[int] = None,
) -> None:
    """Write an uncompressed ZIP of PNGs + dataset.json (EDM format)."""
    from .dataset_tool import make_dataset_zip

    n = make_dataset_zip(source, dest, resolution=resolution, max_images=max_images)
    typer.echo(f"wrote {n} images to {dest}")
