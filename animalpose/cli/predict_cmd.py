"""`animalpose predict --checkpoint CKPT [--checkpoint CKPT2 ...] INPUT... --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

from animalpose.cli.options import threads_option
from animalpose.jsonout import dumps

app = typer.Typer(help="Predict keypoints on images, folders and videos (CSV, COCO JSON, labelled MP4).")


@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def predict(
    inputs: list[Path] = typer.Argument(..., help="Images, folders of images, videos."),
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="A checkpoint written by `animalpose train`; "
                                          "give it several times for an ensemble (models of one schema, e.g. "
                                          "three seeds): their median is written, their spread in each JSON "
                                          "result's ensemble_std."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    detections: Path = typer.Option(None, help="COCO detection results JSON (boxes); default: whole frame."),
    min_score: float = typer.Option(0.0, help="Ignore detections below this score."),
    flip: bool = typer.Option(True, help="Flip test."),
    batch_size: int = typer.Option(32, help="Crops per forward pass."),
    video_scale: float = typer.Option(1.0, help="Size of the labelled video relative to the input."),
    video: bool = typer.Option(True, help="Write labelled videos."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    progress: bool = typer.Option(True, help="Progress bar with frames per second."),
    tracking: bool = typer.Option(False, help="Record the prediction as an MLflow run (CSV/JSON as artifacts)."),
    max_pixels: int = typer.Option(None, "--max-pixels", min=1, help="Refuse images and video frames larger than "
                                   "this many pixels (default 100 million, or $ANIMALPOSE_MAX_IMAGE_PIXELS)."),
    smooth: str = typer.Option("none", "--smooth", help="Smooth each video's tracks: none, savgol "
                               "(Savitzky-Golay), kalman (constant-velocity Kalman smoother) or eks (an "
                               "ensemble's: Lightning Pose's ensemble Kalman smoother, each frame weighed by the "
                               "members' spread); writes <stem>_filtered.csv/.json beside the raw ones and draws "
                               "the smoothed track."),
    smooth_window: int = typer.Option(7, help="savgol: frames in the window (odd)."),
    smooth_min_confidence: float = typer.Option(0.1, help="Frames whose likelihood is below this count as "
                                                "missing (interpolated by savgol, skipped by kalman)."),
    kalman_process_std: float = typer.Option(1.0, help="kalman: acceleration noise, pixels/frame^2."),
    kalman_measurement_std: float = typer.Option(2.0, help="kalman: prediction noise at likelihood 1, pixels "
                                                 "(divided by the likelihood)."),
    eks_smooth: float = typer.Option(None, "--eks-smooth", help="eks: the smoothing parameter (the walk's step "
                                     "variance over the track's own); default: chosen per keypoint by likelihood."),
    eks_min_std: float = typer.Option(0.5, help="eks: pixels added (in quadrature) to the members' spread."),
    multiview: bool = typer.Option(True, help="A multi-view model (trained with multiview.correct) mends its "
                                   "predictions with the views' geometry; --no-multiview: raw network output."),
    threads: int = threads_option(),
) -> None:
    """Write <stem>.csv (DeepLabCut style), <stem>.json (COCO results) and <stem>_labelled.mp4 per video."""
    from animalpose.threads import configure_threads

    configure_threads(threads)
    from animalpose.data.images import set_max_image_pixels
    from animalpose.engine.predict import predict as run_predict
    from animalpose.engine.smoothing import SmoothingConfig

    if max_pixels is not None:
        set_max_image_pixels(max_pixels)
    try:
        smoothing = SmoothingConfig(smooth, window=smooth_window, min_confidence=smooth_min_confidence,
                                    process_std=kalman_process_std, measurement_std=kalman_measurement_std,
                                    eks_smooth=eks_smooth, eks_min_std=eks_min_std)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--smooth") from None

    result = run_predict(checkpoint, list(inputs), out, detections=detections, min_score=min_score, device=device,
                         flip=flip, batch_size=batch_size, video_scale=video_scale, write_video=video,
                         progress=progress, smoothing=smoothing, multiview=multiview)
    if tracking:
        from animalpose.provenance import data_tags
        from animalpose.tracking import Tracker

        name = checkpoint[0].stem if len(checkpoint) == 1 else f"{checkpoint[0].stem}-ensemble-of-{len(checkpoint)}"
        with Tracker("predict", name, tags={"stage": "predict", "checkpoint": ",".join(map(str, checkpoint)),
                                            **data_tags(inputs)}) as tr:
            tr.log_metrics({"frames": result["frames"], "fps": result["fps"], "ensemble": result["ensemble"]})
            for path in result["outputs"]:
                if not path.endswith(".mp4"):
                    tr.log_artifact(path, "predictions")
    typer.echo(dumps(result))
