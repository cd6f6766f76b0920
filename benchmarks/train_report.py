"""The Markdown report of `train.py`: the tables, the machine and the verdicts against targets."""

from __future__ import annotations

from typing import Any

BATCH = 32
TARGETS = {"ours_vs_recipe": 1.0, "mixed_vs_recipe": 1.5, "roofline": 0.7,
           "cache_head_speedup": 20.0, "accuracy_points": 1.0, "e2e_ratio": 1.3}


def verdict(value: float | None, target: float, higher: bool = True) -> str:
    """`value` against `target`: met, NOT met, or not measured."""
    if value is None:
        return "not measured"
    return "met" if (value >= target if higher else value <= target) else "NOT met"


def markdown(result: dict[str, Any]) -> str:
    """train.md: the tables, the machine and how it was measured."""
    m = result["machine"]
    configs = result.get("configs", {})
    r = result.get("ratios", {})
    lines = [
        "# Training benchmark", "",
        f"Measured {result['date']} on {m['cpu_model']}, {m['cores_usable']} usable cores, "
        f"{m['ram_gb']} GB ({m['os']}; Python {m['python']}, TensorFlow {m['tensorflow']}); "
        f"GPUs: {result.get('gpus', 0)}; CPU bfloat16 instructions: {m['cpu_bf16']}. Load average "
        f"{result['load_average_start']} at the start, {result['load_average_end']} at the end "
        "(on a machine shared with other processes: compare the figures side by side, not "
        "with other runs).", "",
        f"{result.get('train_images')} training images and {result.get('eval_images')} held-out "
        f"images (circle vs cross, 150 px, `imgpipe sample-data`), batch {BATCH}, "
        f"{result.get('epochs')} epochs ({result.get('head_epochs')} head epochs for the cache); "
        f"base weights: {result['weights']}.", "",
        "| configuration | images/s | epoch seconds | held-out accuracy | GFLOP/image (train) "
        "| achieved GFLOP/s | roofline | load before → after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in configs.values():
        lines.append(
            f"| {c['name']}: {c['description']} | {c['images_per_s']} | "
            f"{', '.join(str(s) for s in c['epoch_seconds'])} | {100 * c['accuracy']:.1f}% | "
            f"{c['flops_per_image']['total'] / 1e9:.3f} | {c['achieved_gflops']} | "
            f"{c['roofline_fraction']} of {c['matmul_gflops']} | {c['load_before'][0]} → "
            f"{c['load_after'][0]} |")
    if "cache" in configs:
        c = configs["cache"]
        read = ("held in memory for the head's epochs" if c.get("cache_in_memory") else
                "streamed back each epoch")
        lines += ["", f"Cache: writing the features of {result.get('train_images')} images took "
                  f"{c['cache_seconds']:.1f} s ({c['cache_bytes'] / 2**20:.0f} MB on disk, "
                  f"{read})."]
    lines += ["", "| comparison | measured | target | |", "| --- | --- | --- | --- |"]
    rows = [("ours / recipe, float32, augmentation on", r.get("ours_vs_recipe"),
             f"≥ {TARGETS['ours_vs_recipe']}", True, TARGETS["ours_vs_recipe"]),
            ("mixed precision / recipe", r.get("mixed_vs_recipe"),
             f"≥ {TARGETS['mixed_vs_recipe']}", True, TARGETS["mixed_vs_recipe"]),
            ("mixed precision accuracy gap to float32 (points)",
             r.get("mixed_accuracy_gap_points"), "≤ 1", False, 1.0),
            ]
    for pair, value in r.items():  # "cache_b256/ours_noaug": the cache against a full pass
        if "/" in pair:
            cache, baseline = pair.split("/")
            rows += [(f"{cache} head epoch / {baseline} epoch", value["speedup"],
                      f"≥ {TARGETS['cache_head_speedup']}", True, TARGETS["cache_head_speedup"]),
                     (f"{cache} accuracy gap to {baseline} (points)",
                      value["accuracy_gap_points"], "≤ 1", False, 1.0)]
    for name, fraction in r.get("roofline", {}).items():
        rows.append((f"roofline, {name}", fraction, f"≥ {TARGETS['roofline']}", True,
                     TARGETS["roofline"]))
    for label, value, target, higher, bound in rows:
        lines.append(f"| {label} | {value if value is not None else '-'} | {target} | "
                     f"{verdict(value, bound, higher)} |")
    if r.get("cache_flop_bound"):
        lines += ["", f"The cache removes the base's forward pass and keeps the head's: the full "
                  f"pass costs {r['cache_flop_bound']}× the head's FLOPs per image, so at equal "
                  "efficiency that is the most a head epoch can gain. Per step the head also "
                  "reads and updates all 38.5 M parameters of its Dense(1024) kernel (forward, "
                  "gradient, RMSprop), a cost paid per batch, not per image: larger head batches "
                  "amortize it."]
    lines += ["", f"Matrix product 4096², GFLOP/s at the start: {result.get('matmul_gflops')}; "
              f"at the end: {result.get('matmul_gflops_end')}. The roofline divides by the "
              "higher of the two (the lower one measures other jobs' load).", "",
              "Time per 1,000 images grows with the load as much as with the images: read the "
              "load average beside each figure. Memory: `trainer/data.py` streams the images "
              "through a shuffle buffer of up to 4,096 serialized examples, so RSS grows with the "
              "data up to that buffer and stays flat beyond it (unless `--images-in-memory-mb` "
              "holds them).", ""]
    if result.get("scaling"):
        lines += ["## How cost grows (Trainer path, float32, augmentation on, one process per "
                  "size)", "", "| images | epoch seconds | `fit` wall seconds | images/s | RSS at "
                  "the start of fit (MB) | peak RSS during fit (MB) | load before |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in result["scaling"]:
            epochs = round(sum(row["epoch_seconds"]), 2)
            lines.append(f"| {row['images']} | {epochs} | {row['fit_seconds']} | "
                         f"{row['images_per_s']} | "
                         f"{row['rss_at_fit_start_mb']} | {row['peak_rss_mb']} | "
                         f"{row['load_before'][0]} |")
        fit = result.get("scaling_fit", {})
        example_kb = result["scaling"][-1].get("example_kb")
        size = f"about {example_kb} KB each as examples, " if example_kb else ""
        lines += ["", f"Time (the epochs): {fit.get('seconds_per_1000_images')} s per 1,000 "
                  f"images, R² {fit.get('time_r2')}; peak RSS grows "
                  f"{fit.get('rss_growth_mb_per_1000_images')} MB per 1,000 images (the images "
                  f"are {size}67 KB decoded at 150 px). The line is fitted on the epochs: "
                  "`fit`'s wall time also holds the iterators' teardown, which does not grow "
                  "with the data.", ""]
    e2e = result.get("end_to_end")
    if e2e:
        lines += ["## End to end", "", "| run | wall seconds | exit |", "| --- | --- | --- |"]
        for name in ("recipe_script", "imgpipe_run", "imgpipe_run_cache"):
            lines.append(f"| {name} | {e2e[name]['seconds']} | {e2e[name]['exit_code']} |")
        lines += ["", f"`imgpipe run` / script: {e2e['run_vs_script']} (target ≤ 1.3: "
                  f"{verdict(e2e['run_vs_script'], 1.3, False)}); with the cache: "
                  f"{e2e['run_cache_vs_script']} (target < 1).", ""]
    else:
        lines += ["End to end (`imgpipe run` against the recipe script, 2,000 images, 10 epochs) "
                  "was not run: `--end-to-end`.", ""]
    lines += [f"Reproduce: `{result['command']}`.", ""]
    return "\n".join(lines)
