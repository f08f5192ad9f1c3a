"""The ``workbench`` command line on real files: train (a zoo model, a saved model, an imported
ONNX model) on Parquet, CSV and an image folder, predict and evaluate written as Parquet, and
the mistakes a person makes (bad path, missing or mistyped column, unknown model, a model that
does not take the features), each one line and exit code 2.

Commands run in this process on the session's local[2] Spark (``spark`` fixture) where they
can; the checks that fail before Spark starts run as real subprocesses (no JVM: fast), and
``tests/spark/test_cluster.py`` runs train + predict through spark-submit on a standalone
cluster."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from workbench import io
from workbench.cli import main
from workbench.data import load_digits
from workbench.nn import Linear, LogSoftMax, Reshape, Sequential, Tanh, random

pytestmark = pytest.mark.spark
NAMES = ["zero", "one", "two"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mlp(classes=10, seed=3):
    """A small classifier of 8x8 digits; takes (N, 64) and (N, 1, 8, 8)."""
    random.set_seed(seed)
    return (Sequential().add(Reshape([64], batch_mode=True)).add(Linear(64, 32)).add(Tanh())
            .add(Linear(32, classes)).add(LogSoftMax()))


def write_png(path, pixels):
    from PIL import Image
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def files(spark, tmp_path_factory):
    """The 8x8 digits as Parquet (pixels array + id), CSV (64 numeric columns + a class name
    for digits 0-2), an image folder (digits 0-2, one subfolder per class) and model files."""
    root = tmp_path_factory.mktemp("cli")
    (X, y), (Xt, yt) = load_digits(size=8, normalize=False)
    X, Xt = X.reshape(len(X), 64), Xt.reshape(len(Xt), 64)
    X, y, Xt, yt = X[:400], y[:400], Xt[:120], yt[:120]

    def parquet(name, X, y):
        rows = [(i, x.tolist(), int(t)) for i, (x, t) in enumerate(zip(X, y))]
        spark.createDataFrame(rows, "id long, pixels array<float>, digit long") \
            .repartition(2).write.parquet(str(root / name))
    parquet("train.parquet", X, y)
    parquet("test.parquet", Xt, yt)
    keep = y < 3
    header = ",".join([f"p{i}" for i in range(64)] + ["kind"])
    lines = [",".join([f"{v:.4f}" for v in x] + [NAMES[t]]) for x, t in zip(X[keep], y[keep])]
    (root / "three.csv").write_text(header + "\n" + "\n".join(lines) + "\n")
    for i, (x, t) in enumerate(zip(X[keep][:90], y[keep][:90])):
        folder = root / "images" / NAMES[t]
        folder.mkdir(parents=True, exist_ok=True)
        write_png(folder / f"{i}.png", (x.reshape(8, 8) * 255).round().astype(np.uint8))
    io.save_model(mlp(), str(root / "mlp.bigdl"))
    io.save_model(mlp(classes=3), str(root / "mlp3.bigdl"))
    io.save_onnx(mlp(classes=3, seed=4), str(root / "mlp3.onnx"), (1, 64))
    return root, (Xt, yt)


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def value_after(text, prefix):
    line = next(ln for ln in text.splitlines() if ln.startswith(prefix))
    return float(line[len(prefix):].split()[0])


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    """``mlp.bigdl`` fine-tuned on train.parquet by the CLI (3 epochs, validated on
    test.parquet)."""
    root, _ = files
    out = tmp_path_factory.mktemp("trained")
    model = out / "digits.bigdl"
    rc = main(["train", str(root / "mlp.bigdl"), "--data", str(root / "train.parquet"),
               "--features", "pixels", "--label", "digit", "--validation-data",
               str(root / "test.parquet"), "--epochs", "4", "--batch-size", "32",
               "--optimizer", "adam", "--learning-rate", "0.02", "--output", str(model),
               "--log-dir", str(out / "runs"), "--app-name", "mlp"])
    return rc, model, out


def test_train_a_model_file_on_parquet(trained, capsys):
    rc, model, out = trained
    assert rc == 0
    card = json.loads((out / "digits.data.json").read_text())
    assert card["features"] == ["pixels"] and card["label"] == "digit"
    assert card["task"] == "classification" and card["criterion"] == "ClassNLLCriterion"
    assert io.load_model(str(model)).forward(np.zeros((2, 64), np.float32)).shape == (2, 10)
    # TensorBoard logs of training and validation, and a checkpoint per epoch
    runs = out / "runs" / "mlp"
    assert any(f.startswith("events") for _, _, fs in os.walk(runs / "train") for f in fs)
    assert any(f.startswith("events") for _, _, fs in os.walk(runs / "validation") for f in fs)
    assert len(os.listdir(runs / "checkpoints")) >= 1


def test_predict_appends_the_class_and_keeps_every_column(spark, files, trained, tmp_path,
                                                          capsys):
    root, (Xt, yt) = files
    _, model, _ = trained
    out = tmp_path / "scored.parquet"
    rc, text, err = run(capsys, "predict", model, "--data", root / "test.parquet",
                        "--output", out, "--scores")
    assert rc == 0, err
    assert "120 predictions written" in text
    df = spark.read.parquet(str(out))
    assert df.columns == ["id", "pixels", "digit", "scores", "prediction"]
    rows = sorted(df.select("id", "prediction", "scores").collect())
    # the classes and scores are the model's, row by row (ids kept)
    local = io.load_model(str(model))
    local.evaluate()
    expected = np.asarray(local.forward(Xt.astype(np.float32)))
    np.testing.assert_allclose([r.scores for r in rows], expected, rtol=1e-4, atol=1e-5)
    assert [r.prediction for r in rows] == expected.argmax(axis=1).astype(float).tolist()


def test_evaluate_writes_metrics_as_parquet(spark, files, trained, tmp_path, capsys):
    root, (Xt, yt) = files
    _, model, _ = trained
    out = tmp_path / "metrics.parquet"
    rc, text, err = run(capsys, "evaluate", model, "--data", root / "test.parquet",
                        "--output", out)
    assert rc == 0, err
    local = io.load_model(str(model))
    local.evaluate()
    predicted = np.asarray(local.forward(Xt.astype(np.float32))).argmax(axis=1)
    accuracy = float((predicted == yt).mean())
    assert accuracy >= 0.8  # 4 epochs on 400 digits
    metrics = {(r.metric, r["class"]): (r.value, r.records)
               for r in spark.read.parquet(str(out)).collect()}
    assert metrics[("Top1Accuracy", None)] == pytest.approx((accuracy, 120))
    assert value_after(text, "Top1Accuracy: ") == pytest.approx(accuracy, abs=1e-4)
    # per-class recall of digit 3 from the confusion counts
    mask = yt == 3
    assert metrics[("recall", "3")][0] == pytest.approx(float((predicted[mask] == 3).mean()))
    assert metrics[("recall", "3")][1] == int(mask.sum())
    assert {"Loss", "Top5Accuracy", "macro_f1", "macro_precision"} <= {m for m, _ in metrics}
    rc, text, _ = run(capsys, "evaluate", model, "--data", root / "test.parquet", "--output",
                      out)
    assert rc == 2  # the output exists and --overwrite was not given


def test_train_a_zoo_model_with_its_options(spark, files, tmp_path, capsys):
    root, _ = files
    model = tmp_path / "lenet.bigdl"
    rows = spark.read.parquet(str(root / "train.parquet")).limit(64)
    # LeNet-5 takes 28x28 images: the 8x8 digits padded to 28x28 by Spark SQL
    padded = rows.selectExpr(
        "id", "digit % 3 AS digit",
        "flatten(transform(sequence(0, 27), r -> transform(sequence(0, 27), c -> "
        "IF(r >= 10 AND r < 18 AND c >= 10 AND c < 18, pixels[(r - 10) * 8 + c - 10], "
        "CAST(0 AS FLOAT))))) AS pixels")
    padded.write.parquet(str(tmp_path / "big.parquet"))
    rc, text, err = run(capsys, "train", "LeNet5", "--data", tmp_path / "big.parquet",
                        "--features", "pixels", "--label", "digit", "--input-shape", "1,28,28",
                        "--epochs", "1", "--batch-size", "32", "--output", model,
                        "--log-dir", tmp_path / "runs")
    assert rc == 0, err
    assert "LeNet5 on" in text and "(3 classes)" in text  # classes from the labels
    assert io.load_model(str(model)).forward(np.zeros((1, 1, 28, 28), np.float32)).shape == (1, 3)
    # --option sets any constructor argument; an unknown one is named with the parameters
    rc, _, err = run(capsys, "train", "lenet5", "--data", tmp_path / "big.parquet", "--features",
                     "pixels", "--label", "digit", "--option", "depth=3")
    assert rc == 2 and "LeNet5 has no parameter depth (parameters: class_num)" in err


def test_fine_tune_an_onnx_model_on_csv_columns_with_class_names(spark, files, tmp_path,
                                                                   capsys):
    root, _ = files
    model = tmp_path / "three.bigdl"
    columns = ",".join(f"p{i}" for i in range(64))
    rc, text, err = run(capsys, "train", root / "mlp3.onnx", "--data", root / "three.csv",
                        "--features", columns, "--label", "kind", "--validation-split", "0.25",
                        "--epochs", "3", "--optimizer", "adam", "--learning-rate", "0.02",
                        "--output", model, "--log-dir", tmp_path / "runs")
    assert rc == 0, err
    assert value_after(text, "validation Top1Accuracy: ") >= 0.85
    card = json.loads((tmp_path / "three.data.json").read_text())
    assert card["classes"] == sorted(NAMES) and card["features"] == columns.split(",")
    out = tmp_path / "scored.parquet"
    rc, text, err = run(capsys, "predict", model, "--data", root / "three.csv", "--output", out)
    assert rc == 0, err
    rows = spark.read.parquet(str(out)).select("kind", "prediction", "predicted_label").collect()
    assert {r.predicted_label for r in rows} <= set(NAMES)
    assert all(sorted(NAMES)[int(r.prediction)] == r.predicted_label for r in rows)
    assert np.mean([r.kind == r.predicted_label for r in rows]) >= 0.85


def test_train_and_predict_an_image_folder(spark, files, tmp_path, capsys):
    root, _ = files
    model = tmp_path / "images.bigdl"
    rc, text, err = run(capsys, "train", root / "mlp3.bigdl", "--data", root / "images",
                        "--epochs", "4", "--optimizer", "adam", "--learning-rate", "0.02",
                        "--output", model, "--log-dir", tmp_path / "runs")
    assert rc == 0, err
    assert "features features reshaped to (1, 8, 8)" in text and "(3 classes)" in text
    assert json.loads((tmp_path / "images.data.json").read_text())["format"] is None
    out = tmp_path / "scored.parquet"
    rc, text, err = run(capsys, "predict", model, "--data", root / "images", "--output", out)
    assert rc == 0, err
    df = spark.read.parquet(str(out))
    assert df.columns == ["path", "label", "prediction", "predicted_label"]
    rows = df.collect()
    assert len(rows) == 90 and all(r.path.endswith(".png") for r in rows)
    assert np.mean([r.label == r.predicted_label for r in rows]) >= 0.85


def test_images_decode_to_the_pixels_written(spark, files):
    from workbench.spark.files import read_data
    root, _ = files
    df, shape = read_data(spark, str(root / "images"))
    assert shape == (1, 8, 8)
    row = df.filter(df.path.endswith("/zero/0.png")).first()
    from PIL import Image
    expected = np.asarray(Image.open(root / "images" / "zero" / "0.png"), np.float32) / 255
    np.testing.assert_allclose(np.asarray(row.features).reshape(8, 8), expected, atol=1e-6)
    assert row.label == "zero"


# ---------------------------------------------------------------------- mistakes: exit 2
def one_line_error(rc, err, command):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"workbench {command}: error: "), err
    return lines[0]


def test_a_missing_column_is_named_with_the_columns_present(files, capsys):
    root, _ = files
    rc, _, err = run(capsys, "train", root / "mlp.bigdl", "--data", root / "train.parquet",
                     "--features", "pixel", "--label", "digit")
    line = one_line_error(rc, err, "train")
    assert "no column 'pixel' (--features)" in line and "id, pixels, digit" in line
    rc, _, err = run(capsys, "train", root / "mlp.bigdl", "--data", root / "train.parquet",
                     "--features", "pixels")
    assert "no column 'label' (--label)" in one_line_error(rc, err, "train")


def test_a_string_feature_column_is_named_with_its_type(files, capsys):
    root, _ = files
    rc, _, err = run(capsys, "train", root / "mlp3.bigdl", "--data", root / "three.csv",
                     "--features", "p0,kind", "--label", "kind")
    line = one_line_error(rc, err, "train")
    assert "the features column 'kind'" in line and "has type string" in line
    rc, _, err = run(capsys, "predict", root / "mlp3.bigdl", "--data", root / "three.csv",
                     "--features", "kind", "--output", "/nonexistent/x.parquet")
    assert "has type string" in one_line_error(rc, err, "predict")


def test_a_model_that_does_not_take_the_features(files, capsys):
    root, _ = files
    rc, _, err = run(capsys, "train", "lenet5", "--data", root / "train.parquet",
                     "--features", "pixels", "--label", "digit")
    line = one_line_error(rc, err, "train")
    assert "LeNet5 does not take records of shape (64,) from pixels" in line
    assert "--input-shape" in line
    rc, _, err = run(capsys, "train", "lenet5", "--data", root / "train.parquet",
                     "--features", "pixels", "--label", "digit", "--input-shape", "1,28,28")
    assert "--input-shape 1,28,28 holds 784 values but each row of pixels has 64" in \
        one_line_error(rc, err, "train")
    rc, _, err = run(capsys, "train", root / "mlp3.bigdl", "--data", root / "train.parquet",
                     "--features", "pixels", "--label", "digit")
    assert "outputs 3 classes but the label column 'digit' has 10" in \
        one_line_error(rc, err, "train")


def cli(*argv):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_bad_paths_and_unknown_models_fail_before_spark_starts(files, tmp_path):
    root, _ = files
    proc = cli("train", "mlp", "--data", root / "train.parquet")
    line = one_line_error(proc.returncode, proc.stderr, "train")
    assert "unknown model 'mlp'" in line and "LeNet5" in line and "ResNet20" in line
    proc = cli("train", "lenet5", "--data", tmp_path / "missing.parquet")
    assert f"no such file or directory: {tmp_path / 'missing.parquet'}" in \
        one_line_error(proc.returncode, proc.stderr, "train")
    proc = cli("predict", tmp_path / "missing.bigdl", "--data", root / "test.parquet",
               "--output", tmp_path / "o.parquet")
    assert "no such model file" in one_line_error(proc.returncode, proc.stderr, "predict")
    # the file runs as spark-submit runs it (a script, not a module): workbench/io must not
    # shadow the standard library's io
    script = os.path.join(ROOT, "workbench", "cli.py")
    proc = subprocess.run([sys.executable, script, "evaluate", "vgg16", "--data",
                           root / "test.parquet", "--output", tmp_path / "m.parquet"],
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                          timeout=120)
    assert "vgg16 is a zoo model name" in one_line_error(proc.returncode, proc.stderr,
                                                         "evaluate")


def test_an_unreadable_format_is_named(files, tmp_path, capsys):
    root, _ = files
    (tmp_path / "notes.txt").write_text("hello")
    rc, _, err = run(capsys, "train", root / "mlp.bigdl", "--data", tmp_path / "notes.txt")
    assert "cannot tell the format of the file" in one_line_error(rc, err, "train")
    rc, _, err = run(capsys, "train", root / "mlp.bigdl", "--data", root / "train.parquet",
                     "--format", "csv", "--features", "pixels")
    assert "no column 'pixels'" in one_line_error(rc, err, "train")
