"""Writes the tutorial notebooks (stored without outputs; nbval executes them in `make test`)."""
import os

import nbformat as nbf

HERE = os.path.dirname(os.path.abspath(__file__))
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

lenet = [
    md("# LeNet-5 on real handwritten digits\n\n"
       "This tutorial builds BigDL's LeNet-5, trains it on the handwritten digits that ship with "
       "scikit-learn (1,797 real 8×8 scans, resized to 28×28 like MNIST), validates and "
       "checkpoints every epoch, writes TensorBoard summaries and reads them back, saves and "
       "reloads the model, and predicts. It runs in about a minute on a laptop core."),
    code("import os, tempfile\n"
         "import numpy as np\n"
         "import matplotlib\n"
         "import matplotlib.pyplot as plt\n"
         "from workbench.nn import (Sequential, Reshape, SpatialConvolution, Tanh, SpatialMaxPooling,\n"
         "                          Linear, LogSoftMax, ClassNLLCriterion, random)\n"
         "from workbench.optim import Optimizer, SGD, MaxEpoch, EveryEpoch, Top1Accuracy, Loss\n"
         "from workbench.summary import TrainSummary, ValidationSummary\n"
         "from workbench.data import load_digits\n"
         "from workbench import io\n"
         "random.set_seed(42)  # weights and dropout draw from this generator"),
    md("## The data\n`load_digits(size=28)` gives a deterministic, stratified train/test split, "
       "standardized with the training set's statistics. Labels are zero-based (0–9)."),
    code("(X_train, y_train), (X_test, y_test) = load_digits(size=28)\n"
         "print(X_train.shape, y_train.shape, X_test.shape)\n"
         "fig, axes = plt.subplots(1, 8, figsize=(8, 1.3))\n"
         "for ax, img, label in zip(axes, X_train, y_train):\n"
         "    ax.imshow(img[0], cmap='gray'); ax.set_title(int(label)); ax.axis('off')"),
    md("## The model\nExactly BigDL's `lenet5` example: two convolution/pooling stages and two "
       "fully connected layers, log-probabilities out."),
    code("def build_model(class_num):\n"
         "    model = Sequential()\n"
         "    model.add(Reshape([1, 28, 28]))\n"
         "    model.add(SpatialConvolution(1, 6, 5, 5).set_name('conv1'))\n"
         "    model.add(Tanh())\n"
         "    model.add(SpatialMaxPooling(2, 2, 2, 2))\n"
         "    model.add(Tanh())\n"
         "    model.add(SpatialConvolution(6, 12, 5, 5).set_name('conv2'))\n"
         "    model.add(SpatialMaxPooling(2, 2, 2, 2))\n"
         "    model.add(Reshape([12 * 4 * 4]))\n"
         "    model.add(Linear(12 * 4 * 4, 100).set_name('fc1'))\n"
         "    model.add(Tanh())\n"
         "    model.add(Linear(100, class_num).set_name('fc2'))\n"
         "    model.add(LogSoftMax())\n"
         "    return model\n\n"
         "model = build_model(10)\n"
         "weights, grads = model.get_parameters()   # one flat vector; every layer's weight is a view\n"
         "print(model)\n"
         "print(f'{weights.size:,} parameters')"),
    md("## Training\nBigDL's `Optimizer`: validation and a checkpoint at every epoch, TensorBoard "
       "summaries for training and validation."),
    code("log_dir = os.path.join('runs')\n"
         "app_name = 'lenet-digits'\n"
         "checkpoints = tempfile.mkdtemp(prefix='lenet-checkpoints-')\n"
         "train_summary = TrainSummary(log_dir, app_name)\n"
         "val_summary = ValidationSummary(log_dir, app_name)\n\n"
         "optimizer = Optimizer(model, (X_train, y_train), ClassNLLCriterion(), MaxEpoch(15), 32,\n"
         "                      SGD(learningrate=0.05, momentum=0.9, dampening=0.0, weightdecay=5e-4), seed=7)\n"
         "optimizer.set_validation(256, (X_test, y_test), EveryEpoch(), [Top1Accuracy(), Loss()])\n"
         "optimizer.set_checkpoint(EveryEpoch(), checkpoints)\n"
         "optimizer.set_train_summary(train_summary)\n"
         "optimizer.set_val_summary(val_summary)\n"
         "trained = optimizer.optimize()"),
    md("## Reading the summaries back\n`read_scalar(tag)` returns rows of (step, value, "
       "wall time), read with TensorBoard's own event reader. `tensorboard --logdir runs` shows "
       "the same curves."),
    code("loss = train_summary.read_scalar('Loss')\n"
         "accuracy = val_summary.read_scalar('Top1Accuracy')\n"
         "fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3))\n"
         "a.plot(loss[:, 0], loss[:, 1]); a.set_xlabel('iteration'); a.set_title('training loss')\n"
         "b.plot(accuracy[:, 0], accuracy[:, 1], marker='o'); b.set_xlabel('iteration'); b.set_title('test accuracy')\n"
         "print(f'{len(loss)} loss points, accuracy after each epoch: {np.round(accuracy[:, 1], 3)}')"),
    md("## Save, load, predict\nThe model file is JSON (architecture) plus an npz of weights "
       "in one zip: no pickle, so loading a file from elsewhere cannot run code."),
    code("path = os.path.join(tempfile.mkdtemp(), 'lenet.bigdl')\n"
         "io.save_model(trained, path)\n"
         "loaded = io.load_model(path)\n"
         "same = np.array_equal(loaded.predict(X_test), trained.predict(X_test))\n"
         "predicted = loaded.predict_class(X_test)\n"
         "print('identical predictions after reload:', same)\n"
         "print('first predictions:', predicted[:12], 'labels:', y_test[:12])"),
    md("Resuming from the newest checkpoint continues training exactly where it stopped "
       "(weights, optimizer state, counters and random state are all in the checkpoint):"),
    code("resumed = Optimizer(build_model(10), (X_train, y_train), ClassNLLCriterion(), MaxEpoch(16), 32,\n"
         "                    SGD(learningrate=0.05, momentum=0.9, dampening=0.0, weightdecay=5e-4), progress=False)\n"
         "resumed.optimize(resume_from=checkpoints)\n"
         "print('resumed at epoch 15 and trained one more: now at iteration', resumed.state.iteration)"),
    md("## The result\nThe tutorial checks its own result: LeNet-5 must classify at least 97% of "
       "the held-out digits correctly."),
    code("result = trained.evaluate((X_test, y_test), 256, [Top1Accuracy()])[0]\n"
         "print(result)\n"
         "assert same, 'reloaded model predicts differently'\n"
         "assert result.value >= 0.97, f'test accuracy {result.value:.4f} is below 0.97'"),
]


def magic_notebook():
    """02: the %%bigdl_train magic, its live dashboard, history and TensorBoard pane."""
    return [
        md("# Training from a notebook cell: `%%bigdl_train`\n\n"
           "`%load_ext workbench` adds two magics. `%%bigdl_train` trains a model of the notebook "
           "on data of the notebook with a live dashboard (progress, records/s, ETA, learning "
           "rate, loss and validation charts, a Stop button, a summary at the end), writes "
           "TensorBoard logs, and puts the trained model and its history back into the "
           "namespace. `%bigdl_tensorboard` shows a run in TensorBoard, inside the notebook. "
           "In JupyterLab the **Workbench** sidebar lists every run with its latest metrics."),
        code("%load_ext workbench\n"
             "from workbench.data import load_digits\n"
             "from workbench.models import LeNet5\n"
             "from workbench.optim import Optimizer, SGD, MaxEpoch, EveryEpoch, Top1Accuracy\n"
             "from workbench.nn import ClassNLLCriterion, random\n"
             "random.set_seed(42)\n"
             "(X_train, y_train), (X_test, y_test) = load_digits(size=28)\n"
             "print(X_train.shape, X_test.shape)"),
        md("## Train\nOptions go on the magic's line or on lines starting with `--`; the "
           "rest of the cell is Python, run first (here it builds the model). Names refer to "
           "the notebook's variables; `--optim SGD --lr 0.05` names a class of "
           "`workbench.optim` and its hyperparameters (`--optim \"Adam(learningrate=1e-3)\"` "
           "works too). `%bigdl_train?` documents every option. Press **Stop** to end "
           "training after the current iteration: the model keeps its weights."),
        code("%%bigdl_train --model model --data X_train y_train --epochs 12 --batch-size 32\n"
             "--optim SGD --lr 0.05 --momentum 0.9 --weight-decay 5e-4 --param dampening=0.0\n"
             "--val X_test y_test --metrics Top1Accuracy Loss --run lenet-magic --seed 7\n"
             "model = LeNet5(10)"),
        md("## The history\n`history` has one row per iteration (epoch, loss, records/s, "
           "learning rate, wall time) and the validation scores on the rows after which "
           "validation ran."),
        code("print(history.shape)\n"
             "history.dropna(subset=['val_Top1Accuracy'])[['epoch', 'loss', 'val_Top1Accuracy', "
             "'val_Loss']].round(4)"),
        md("## Mistakes in the options say what is wrong, in one line"),
        code("for line in ['--model model --data X_train y_test',\n"
             "             '--model model --data X_train y_train --optim Adam --momentum 0.9']:\n"
             "    try:\n"
             "        get_ipython().run_line_magic('bigdl_train', line)\n"
             "    except Exception as e:\n"
             "        print(type(e).__name__ + ':', e)"),
        md("## TensorBoard, inside the notebook\nThe TensorBoard process runs next to the "
           "kernel and is reached through jupyter-server-proxy, so this also works on a remote "
           "JupyterLab. It stops with `--stop`, or when the kernel exits."),
        code("%bigdl_tensorboard lenet-magic"),
        code("%bigdl_tensorboard --stop lenet-magic"),
        md("## The dashboard without the magic\n`Dashboard(optimizer)` listens to any "
           "`Optimizer` (local or Spark) and replaces its console progress bar."),
        code("from workbench.notebook import Dashboard\n"
             "small = LeNet5(10)\n"
             "optimizer = Optimizer(small, (X_train, y_train), ClassNLLCriterion(), MaxEpoch(1), 32,\n"
             "                      SGD(learningrate=0.05, momentum=0.9, dampening=0.0), seed=3)\n"
             "optimizer.set_validation(256, (X_test, y_test), EveryEpoch(), [Top1Accuracy()])\n"
             "dashboard = Dashboard(optimizer, run='one-epoch')\n"
             "display(dashboard)\n"
             "optimizer.optimize()\n"
             "dashboard.status"),
        md("## The result\nThe tutorial checks its own result: twelve epochs, validated after "
           "each, and at least 97% of the held-out digits classified correctly."),
        code("result = model.evaluate((X_test, y_test), 256, [Top1Accuracy()])[0]\n"
             "print(result)\n"
             "assert history['epoch'].max() == 12, history['epoch'].max()\n"
             "assert history['val_Top1Accuracy'].notna().sum() == 12\n"
             "assert dashboard.status == 'finished', dashboard.status\n"
             "assert result.value >= 0.97, f'test accuracy {result.value:.4f} is below 0.97'"),
    ]


def write(name, cells):
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = os.path.join(HERE, "..", "notebooks", name)
    nbf.write(nb, path)
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    write("01_lenet_digits.ipynb", lenet)
    write("02_bigdl_train_magic.ipynb", magic_notebook())
