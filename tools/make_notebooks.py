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
        md("## On a Spark DataFrame\nThe same magic trains on an RDD or a DataFrame with "
           "synchronous data-parallel SGD over its partitions. `--master local[2]` creates (or "
           "reuses) the Spark session before the cell's code runs, so the code can build the "
           "DataFrames; the dashboard is the same, and the Workbench sidebar gets a *Spark UI* "
           "button for this run."),
        code("%%bigdl_train --model spark_model --data train_df --val test_df --epochs 3 --seed 7\n"
             "--optim SGD --lr 0.05 --momentum 0.9 --param dampening=0.0 --master local[2]\n"
             "--run lenet-spark --history spark_history\n"
             "from workbench.spark import get_spark\n"
             "spark = get_spark()\n"
             "spark.sparkContext.setLogLevel('ERROR')\n"
             "rows = lambda X, y: [(x.ravel().tolist(), int(t)) for x, t in zip(X, y)]\n"
             "train_df = spark.createDataFrame(rows(X_train, y_train), ['features', 'label'])\n"
             "test_df = spark.createDataFrame(rows(X_test, y_test), ['features', 'label'])\n"
             "spark_model = LeNet5(10)"),
        code("spark_history.dropna(subset=['val_Top1Accuracy'])[['epoch', 'loss', "
             "'val_Top1Accuracy']].round(4)"),
        md("## The result\nThe tutorial checks its own result: twelve epochs, validated after "
           "each, and at least 97% of the held-out digits classified correctly; the three "
           "epochs on Spark reach at least 92%."),
        code("result = model.evaluate((X_test, y_test), 256, [Top1Accuracy()])[0]\n"
             "print(result)\n"
             "assert history['epoch'].max() == 12, history['epoch'].max()\n"
             "assert history['val_Top1Accuracy'].notna().sum() == 12\n"
             "assert dashboard.status == 'finished', dashboard.status\n"
             "assert result.value >= 0.97, f'test accuracy {result.value:.4f} is below 0.97'\n"
             "spark_accuracy = spark_model.evaluate((X_test, y_test), 256, [Top1Accuracy()])[0]\n"
             "print('on Spark:', spark_accuracy)\n"
             "assert spark_history['epoch'].max() == 3\n"
             "assert spark_accuracy.value >= 0.92, f'Spark accuracy {spark_accuracy.value:.4f}'"),
    ]


def shakespeare_rnn_notebook():
    """04: a character LSTM learns Shakespeare and writes some."""
    return [
        md("# A character LSTM learns Shakespeare\n\n"
           "This tutorial trains BigDL's recurrent building blocks — `LookupTable`, "
           "`Recurrent().add(LSTM(...))`, `TimeDistributed(Linear(...))` — to predict the next "
           "character of three plays (about 400,000 characters of real Shakespeare, shipped in "
           "the `shakespeare` package; nothing downloads), then samples new text from it. "
           "Training takes well under two minutes on one core."),
        code("import numpy as np\n"
             "import matplotlib.pyplot as plt\n"
             "from threadpoolctl import threadpool_limits\n"
             "from workbench.nn import (Sequential, LookupTable, Recurrent, LSTM, TimeDistributed,\n"
             "                          Linear, TimeDistributedCriterion, CrossEntropyCriterion, random)\n"
             "from workbench.optim import Optimizer, Adam, MaxIteration\n"
             "from workbench.optim.events import Listener\n"
             "from workbench.data import load_shakespeare_chars, unigram_entropy\n"
             "from workbench.models import sample_text\n"
             "random.set_seed(7)\n"
             "# The matrices of one LSTM step are small: BLAS threads cost more than they bring.\n"
             "threadpool_limits(1);"),
        md("## The data\n`load_shakespeare_chars` reads the plays, builds the character "
           "vocabulary, and cuts the text into sequences of 50 characters; the target of each "
           "character is the next one. The last 10% of the text is held out.\n\n"
           "The yardstick is the **unigram entropy**: the loss per character of the best model "
           "that ignores context and only knows how frequent each character is."),
        code("(X, y), (X_test, y_test), vocab = load_shakespeare_chars(\n"
             "    ['hamlet', 'macbeth', 'julius_caesar'], seq_length=50, test_fraction=0.1)\n"
             "entropy = unigram_entropy(y_test, vocab.size)\n"
             "print(vocab, '-', X.shape[0], 'training sequences,', X_test.shape[0], 'held out')\n"
             "print(f'unigram entropy of the held-out characters: {entropy:.3f} nats')\n"
             "print(repr(vocab.decode(X[40])))\n"
             "print(repr(vocab.decode(y[40])))"),
        md("## The model\nCharacter ids → 32-dimensional embeddings → an LSTM with 128 units, "
           "run over the sequence by `Recurrent` → at every step a linear layer scoring the "
           "next character (`workbench.models.CharLSTM` builds the same model). "
           "`TimeDistributedCriterion` applies the cross-entropy at every step and averages."),
        code("vocab_size = vocab.size\n"
             "model = Sequential()\n"
             "model.add(LookupTable(vocab_size, 32).set_name('embedding'))\n"
             "model.add(Recurrent().add(LSTM(32, 128)).set_name('lstm'))\n"
             "model.add(TimeDistributed(Linear(128, vocab_size)).set_name('scores'))\n"
             "criterion = TimeDistributedCriterion(CrossEntropyCriterion(), size_average=True)\n"
             "print(model)\n"
             "print(f'{model.get_parameters()[0].size:,} parameters')"),
        md("## Training\n300 iterations of Adam on mini-batches of 32 sequences (a little more "
           "than one pass over the training text). A small listener records the loss of every "
           "iteration."),
        code("class LossLog(Listener):\n"
             "    def __init__(self):\n"
             "        self.losses = []\n"
             "    def on_iteration(self, event):\n"
             "        self.losses.append(event.loss)\n\n"
             "log = LossLog()\n"
             "optimizer = Optimizer(model, (X, y), criterion, MaxIteration(300), 32,\n"
             "                      Adam(learningrate=0.01), seed=1)\n"
             "optimizer.add_listener(log)\n"
             "trained = optimizer.optimize()"),
        code("model.evaluate()\n"
             "held_out = np.mean([criterion.forward(model.forward(X_test[i:i + 256]), y_test[i:i + 256])\n"
             "                    for i in range(0, len(X_test), 256)])\n"
             "plt.figure(figsize=(8, 3))\n"
             "plt.plot(log.losses, label='training loss')\n"
             "plt.axhline(entropy, color='gray', linestyle='--', label='unigram entropy')\n"
             "plt.axhline(held_out, color='green', linestyle=':', label='held-out loss')\n"
             "plt.xlabel('iteration'); plt.ylabel('nats per character'); plt.legend()\n"
             "print(f'held-out loss {held_out:.3f} nats/char vs unigram entropy {entropy:.3f}')"),
        md("## Writing like Shakespeare (almost)\n`sample_text` feeds a prompt, then draws one "
           "character at a time from the predicted distribution and feeds it back, carrying the "
           "LSTM state from step to step with `Recurrent.set_hidden_state`. A lower temperature "
           "picks likelier characters."),
        code("for temperature in (0.5, 0.9):\n"
             "    print(f'--- temperature {temperature}')\n"
             "    print(sample_text(model, vocab, 'HAMLET.\\n', 300, temperature, seed=0))"),
        md("## The result\nThe tutorial checks its own result: on text it never saw, the model "
           "must beat the unigram entropy by at least half a nat per character."),
        code("print(f'held-out loss {held_out:.3f}, unigram entropy {entropy:.3f}')\n"
             "assert len(log.losses) == 300\n"
             "assert held_out < entropy - 0.5, f'held-out loss {held_out:.3f} is not below {entropy - 0.5:.3f}'"),
    ]


def distributed_notebook():
    """Tutorial 03: LeNet-5 trained on a Spark DataFrame (workbench.spark)."""
    return [
        md("# Distributed training on Spark\n\n"
           "The same `Optimizer` as in tutorial 01, given a Spark **DataFrame** instead of numpy "
           "arrays, trains with synchronous data-parallel SGD on Spark: one barrier stage per "
           "stretch of iterations, gradients all-reduced between the tasks over TCP, each task "
           "updating its 1/N slice of the weights with its 1/N slice of the optimizer state. "
           "Validation runs as a distributed evaluation, checkpoints and TensorBoard summaries "
           "work as before. Here Spark runs in this process (`local[*]`); the same code runs "
           "on a cluster with `spark-submit` (see the README)."),
        code("import os, tempfile\n"
             "import numpy as np\n"
             "import matplotlib\n"
             "import matplotlib.pyplot as plt\n"
             "os.environ.setdefault('SPARK_LOCAL_IP', '127.0.0.1')\n"
             "import workbench.spark                      # makes Optimizer/predict/evaluate accept Spark data\n"
             "from workbench.spark import get_spark\n"
             "from workbench import models\n"
             "from workbench.data import load_digits\n"
             "from workbench.nn import ClassNLLCriterion, random\n"
             "from workbench.optim import Optimizer, SGD, MaxEpoch, EveryEpoch, Top1Accuracy, Loss\n"
             "from workbench.summary import TrainSummary, ValidationSummary\n"
             "random.set_seed(42)\n"
             "spark = get_spark('local[*]', app_name='tutorial-03')   # the active session, or a new one\n"
             "sc = spark.sparkContext\n"
             "print(sc.master, 'with', workbench.spark.task_slots(sc), 'task slots')"),
        md("## The data as DataFrames\nA `features` column (an array of 784 floats; a "
           "`VectorUDT` column or several numeric columns work too: pass `features_col=`) and a "
           "`label` column. The records keep the order they are created in, so the run is "
           "reproducible."),
        code("(X_train, y_train), (X_test, y_test) = load_digits(size=28)\n"
             "schema = 'features array<float>, label long'\n"
             "def frame(X, y):\n"
             "    rows = [(x.ravel().tolist(), int(t)) for x, t in zip(X, y)]\n"
             "    return spark.createDataFrame(sc.parallelize(rows, 2), schema).cache()\n"
             "train_df, test_df = frame(X_train, y_train), frame(X_test, y_test)\n"
             "train_df.printSchema()\n"
             "print(train_df.count(), 'training rows,', test_df.count(), 'test rows')"),
        md("## Training on Spark\nBigDL's `Optimizer`, unchanged: validation and a checkpoint "
           "every epoch, TensorBoard summaries. The console progress is printed on the driver "
           "while the tasks train."),
        code("model = models.LeNet5(10)\n"
             "log_dir, app_name = 'runs', 'lenet-spark'\n"
             "checkpoints = tempfile.mkdtemp(prefix='lenet-spark-checkpoints-')\n"
             "train_summary = TrainSummary(log_dir, app_name)\n"
             "val_summary = ValidationSummary(log_dir, app_name)\n"
             "optimizer = Optimizer(model, train_df, ClassNLLCriterion(), MaxEpoch(10), 32,\n"
             "                      SGD(learningrate=0.05, momentum=0.9, dampening=0.0, weightdecay=5e-4),\n"
             "                      seed=7, features_col='features', label_col='label')\n"
             "optimizer.set_validation(256, test_df, EveryEpoch(), [Top1Accuracy(), Loss()])\n"
             "optimizer.set_checkpoint(EveryEpoch(), checkpoints)\n"
             "optimizer.set_train_summary(train_summary)\n"
             "optimizer.set_val_summary(val_summary)\n"
             "trained = optimizer.optimize()"),
        md("## TensorBoard\nThe same summaries as local training (`tensorboard --logdir runs` "
           "shows them)."),
        code("loss = train_summary.read_scalar('Loss')\n"
             "accuracy = val_summary.read_scalar('Top1Accuracy')\n"
             "throughput = train_summary.read_scalar('Throughput')\n"
             "fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3))\n"
             "a.plot(loss[:, 0], loss[:, 1]); a.set_xlabel('iteration'); a.set_title('training loss')\n"
             "b.plot(accuracy[:, 0], accuracy[:, 1], marker='o'); b.set_xlabel('iteration'); b.set_title('test accuracy')\n"
             "print(f'median throughput {np.median(throughput[:, 1]):,.0f} records/s')"),
        md("## Distributed evaluate and predict\n`model.evaluate(df, ...)`, `model.predict(df)` "
           "and `model.predict_class(df)` run as Spark jobs; they agree with the in-process "
           "versions on the same data."),
        code("distributed = trained.evaluate(test_df, 256, [Top1Accuracy(), Loss()])\n"
             "local = trained.evaluate((X_test, y_test), 256, [Top1Accuracy(), Loss()])\n"
             "print('on Spark:', distributed)\n"
             "print('locally: ', local)\n"
             "predicted = trained.predict_class(test_df)\n"
             "print('first predictions:', predicted[:12], 'labels:', y_test[:12])\n"
             "assert np.array_equal(predicted, trained.predict_class(X_test))"),
        md("## Resuming from a checkpoint\nA new driver (say, after a crash) continues from the "
           "newest checkpoint: weights, optimizer state and counters."),
        code("resumed = Optimizer(models.LeNet5(10), train_df, ClassNLLCriterion(), MaxEpoch(11), 32,\n"
             "                    SGD(learningrate=0.05, momentum=0.9, dampening=0.0, weightdecay=5e-4),\n"
             "                    progress=False)\n"
             "resumed.optimize(resume_from=checkpoints)\n"
             "print('resumed at epoch 10 and trained one more: now at iteration', resumed.state.iteration)"),
        md("## The result\nThe tutorial checks itself: at least 95% of the held-out digits "
           "classified correctly, the same on Spark as in-process."),
        code("acc = distributed[0].value\n"
             "print(f'test accuracy {acc:.4f}')\n"
             "assert abs(acc - local[0].value) < 1e-9\n"
             "assert acc >= 0.95, f'test accuracy {acc:.4f} is below 0.95'"),
    ]


def tuning_notebook():
    """05: hyperparameter tuning of LeNet-5 on Spark with the TuningBoard and %%bigdl_tune."""
    return [
        md("# Hyperparameter tuning on Spark\n\n"
           "`workbench.tune` searches hyperparameters with parallel trials on Spark: each trial "
           "trains one model in a Spark task (the data is shipped once per executor), reports "
           "its validation accuracy after every epoch, and the **median pruner** stops trials "
           "that fall behind the others. The **TuningBoard** widget sets the search space "
           "with controls (a log-scale range for the learning rate, choices for the batch size "
           "and the optim method, ranges for the layer size and dropout), runs the study, and "
           "shows a live leaderboard and every trial's accuracy per epoch; the best model and "
           "a DataFrame of all trials come back to the notebook. The study also shows in the "
           "**Workbench** sidebar and in TensorBoard's HParams tab."),
        code("%load_ext workbench\n"
             "import os\n"
             "os.environ.setdefault('SPARK_LOCAL_IP', '127.0.0.1')\n"
             "from workbench import tune\n"
             "from workbench.data import load_digits\n"
             "from workbench.nn import (Sequential, Reshape, SpatialConvolution, Tanh, SpatialMaxPooling,\n"
             "                          Linear, Dropout, LogSoftMax, random)\n"
             "from workbench.notebook import TuningBoard\n"
             "from workbench.optim import Top1Accuracy\n"
             "from workbench.spark import get_spark\n"
             "random.set_seed(42)\n"
             "spark = get_spark('local[2]', app_name='tutorial-05')   # trials run as Spark tasks\n"
             "spark.sparkContext.setLogLevel('ERROR')\n"
             "(X_train, y_train), (X_test, y_test) = load_digits(size=28)\n"
             "# the trials are scored on a validation split of the training set; the test set is\n"
             "# only used once, on the chosen model\n"
             "X_fit, y_fit, X_val, y_val = X_train[:1150], y_train[:1150], X_train[1150:], y_train[1150:]\n"
             "print(X_fit.shape, X_val.shape, X_test.shape)"),
        md("## The model, built from the trial's hyperparameters\n"
           "BigDL's LeNet-5 (as `workbench.models.LeNet5`), with the size of the first fully "
           "connected layer and a dropout before the classifier taken from `params`. The "
           "optim method and learning rate come from `params` too (`params['optim']`, "
           "`params['learningrate']`, `params['batch_size']`): `tune.SupervisedObjective` "
           "makes them."),
        code("def build(params):\n"
             "    hidden = params['hidden']\n"
             "    model = Sequential()\n"
             "    model.add(Reshape([1, 28, 28]))\n"
             "    model.add(SpatialConvolution(1, 6, 5, 5)).add(Tanh())\n"
             "    model.add(SpatialMaxPooling(2, 2, 2, 2)).add(Tanh())\n"
             "    model.add(SpatialConvolution(6, 12, 5, 5))\n"
             "    model.add(SpatialMaxPooling(2, 2, 2, 2))\n"
             "    model.add(Reshape([12 * 4 * 4]))\n"
             "    model.add(Linear(12 * 4 * 4, hidden)).add(Tanh())\n"
             "    model.add(Dropout(params['dropout']))\n"
             "    model.add(Linear(hidden, 10)).add(LogSoftMax())\n"
             "    return model"),
        md("## The search space\nA log-uniform learning rate, a choice of batch sizes and "
           "optim methods, an integer range (both ends included, in steps) for the hidden "
           "layer and a uniform range for dropout. `tune.conditional` adds a parameter only "
           "for some values of another one (here: momentum for SGD only)."),
        code("space = {\n"
             "    'learningrate': tune.loguniform(1e-3, 0.1),\n"
             "    'batch_size': tune.choice([16, 32, 64]),\n"
             "    'optim': tune.choice(['SGD', 'Adam']),\n"
             "    'momentum': tune.conditional('optim', {'SGD': tune.uniform(0.5, 0.95)}),\n"
             "    'hidden': tune.randint(32, 128, step=32),\n"
             "    'dropout': tune.uniform(0.0, 0.4),\n"
             "}"),
        md("## The tuning board\nThe controls show the space; change a range or a choice, the "
           "number of trials or the parallelism, and press **Run** (the study runs in the "
           "background and the kernel stays free); **Stop** ends it, keeping the finished "
           "trials. Here the cell runs the study itself (`board.run(block=True)`), so the "
           "notebook can go on with the result: 10 trials of up to 10 epochs, two at a time on "
           "Spark `local[2]`, TPE sampling, the median pruner. At the end the best trial is "
           "highlighted, and `best_model` and `trials` are in the notebook."),
        code("board = TuningBoard(build, data=(X_fit, y_fit), val=(X_val, y_val), space=space,\n"
             "                    n_trials=10, parallelism=2, epochs=10, algo='tpe', pruner='median',\n"
             "                    seed=0, name='lenet-tuning')\n"
             "display(board)\n"
             "result = board.run(block=True)\n"
             "result"),
        md("## All trials\n`trials` has one row per trial: status (completed / pruned), the "
           "final and best validation accuracy, the epochs it ran, its time and its "
           "hyperparameters (`param_...`)."),
        code("trials.sort_values('value', ascending=False)[['trial', 'status', 'value', 'epochs', 'elapsed',\n"
             "    'param_learningrate', 'param_batch_size', 'param_optim', 'param_momentum', 'param_hidden',\n"
             "    'param_dropout']].round(4)"),
        md("## The same from a cell magic\n`%%bigdl_tune` takes the space as options "
           "(`--lr 1e-3:0.3` is a log range, `--batch-size 16,32,64` a choice, `--hidden "
           "32:128:32` an integer range with its step, `--dropout 0:0.4` a uniform range), runs "
           "the cell's code first (it defines `build`), shows the same board and waits for "
           "the study; `%bigdl_tune?` lists every option."),
        code("%%bigdl_tune --data X_fit y_fit --val X_val y_val --trials 4 --parallelism 2 --epochs 2\n"
             "--lr 0.01:0.2 --batch-size 32,64 --optim SGD,Adam --hidden 32:128:32 --dropout 0:0.3\n"
             "--seed 1 --name lenet-tuning-magic --out magic_model --trials-out magic_trials\n"
             "# build(params) is the one defined above"),
        md("## The result\nThe tutorial checks itself: the returned model is the best trial's "
           "model (it scores the best validation accuracy), the median pruner stopped some "
           "trials early, and on the test set, which no trial saw, the chosen model classifies "
           "at least 93% of the digits."),
        code("best = result.best_trial\n"
             "val_accuracy = best_model.evaluate((X_val, y_val), 256, [Top1Accuracy()])[0].value\n"
             "test_accuracy = best_model.evaluate((X_test, y_test), 256, [Top1Accuracy()])[0].value\n"
             "print(f'best trial {best.number}: validation {val_accuracy:.4f}, test '\n"
             "      f'{test_accuracy:.4f} with {result.best_params}')\n"
             "print(trials['status'].value_counts().to_dict())\n"
             "assert len(trials) == 10\n"
             "assert abs(val_accuracy - result.best_value) < 1e-9\n"
             "assert val_accuracy >= 0.92, f'best validation accuracy {val_accuracy:.4f} < 0.92'\n"
             "assert test_accuracy >= 0.93, f'test accuracy {test_accuracy:.4f} is below 0.93'\n"
             "assert trials['pruned'].sum() >= 1, 'no trial was pruned'\n"
             "assert board.best == best.number and board.status == 'finished'\n"
             "assert len(magic_trials) == 4 and magic_model is not None"),
    ]


def model_zoo_notebook():
    """09: ResNet-20 and VGG for CIFAR on coloured digits, autoencoder reconstructions."""
    return [
        md("# The model zoo: ResNet, VGG and an autoencoder\n\n"
           "`workbench.models` holds the networks of BigDL's examples under BigDL's names: "
           "`ResNet20` / `ResNet_CIFAR` and `VggForCifar10` for 32×32 colour images, "
           "`Autoencoder` for MNIST-like digits, and more (LeNet-5, Inception, the ImageNet "
           "ResNets and VGGs in torchvision's layout, text and recurrent models). This tutorial "
           "lists a few with their sizes, trains ResNet-20 for a short while, takes a few "
           "steps with the much heavier VGG, and trains the autoencoder, showing its "
           "reconstructions as pictures.\n\n"
           "**No downloads.** CIFAR-10 is not bundled, so the small image set is made from the "
           "handwritten digits that ship with scikit-learn (`workbench.data.load_digits`): "
           "each 28×28 digit is padded to 32×32 and painted in a random foreground colour on "
           "a random dark background, with a little Gaussian noise. It runs in about a minute "
           "on one core."),
        code("import tempfile, time\n"
             "import numpy as np\n"
             "import pandas as pd\n"
             "import matplotlib\n"
             "import matplotlib.pyplot as plt\n"
             "from workbench.data import load_digits\n"
             "from workbench.models import (ResNet20, ResNet_CIFAR, VggForCifar10, Autoencoder, LeNet5,\n"
             "                              ResNet18)\n"
             "from workbench.nn import ClassNLLCriterion, MSECriterion, random\n"
             "from workbench.optim import Optimizer, SGD, Adam, Poly, MaxEpoch, MaxIteration, Top1Accuracy\n"
             "from workbench.summary import TrainSummary\n"
             "random.set_seed(42)            # weights and dropout draw from this generator\n"
             "rng = np.random.default_rng(0)  # the colours and the noise of the image set"),
        md("## A small colour image set from the digits\n"
           "`load_digits(size=28, normalize=False)` gives the deterministic train/test split "
           "with pixels in [0, 1]. We keep 512 training and 200 test images (a ResNet on a "
           "laptop core trains on a few hundred images in seconds), pad them to the 32×32 the "
           "CIFAR networks expect, and colour them: `background + (foreground − background) × "
           "digit`, each image with its own colours, plus noise of standard deviation 0.05. "
           "Colour is no clue to the class, so the network has to learn shapes. Finally each "
           "channel is standardized with the training set's statistics."),
        code("(X_train, y_train), (X_test, y_test) = load_digits(size=28, normalize=False)\n"
             "X_train, y_train, X_test, y_test = X_train[:512], y_train[:512], X_test[:200], y_test[:200]\n\n"
             "def colour(X):\n"
             "    digits = np.pad(X[:, 0], ((0, 0), (2, 2), (2, 2)))[:, None]   # (N, 1, 32, 32)\n"
             "    foreground = rng.uniform(0.4, 1.0, (len(X), 3, 1, 1))\n"
             "    background = rng.uniform(0.0, 0.3, (len(X), 3, 1, 1))\n"
             "    images = background + (foreground - background) * digits\n"
             "    images += rng.normal(0.0, 0.05, images.shape)\n"
             "    return np.clip(images, 0.0, 1.0).astype(np.float32)\n\n"
             "images_train, images_test = colour(X_train), colour(X_test)\n"
             "mean = images_train.mean(axis=(0, 2, 3), keepdims=True)\n"
             "std = images_train.std(axis=(0, 2, 3), keepdims=True)\n"
             "C_train, C_test = (images_train - mean) / std, (images_test - mean) / std\n"
             "print('train', C_train.shape, 'test', C_test.shape, 'classes', np.bincount(y_train))\n"
             "fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))\n"
             "for ax, img, label in zip(axes, images_train, y_train):\n"
             "    ax.imshow(img.transpose(1, 2, 0)); ax.set_title(int(label)); ax.axis('off')\n"
             "assert C_train.shape == (512, 3, 32, 32) and C_test.shape == (200, 3, 32, 32)\n"
             "assert set(np.unique(y_train)) == set(range(10))"),
        md("## The zoo and its sizes\n"
           "Every builder returns an ordinary `Sequential` (or graph) of workbench layers; "
           "`get_parameters()` gives all weights as one flat vector. The counts match the "
           "papers' and torchvision's: ResNet-20 has 272,474 parameters with the projection "
           "shortcuts (option B, BigDL's default) and 269,722 with the parameter-free option A; "
           "BigDL's VGG-16 for CIFAR has about 15 million, 55 times more. The time is what "
           "one forward pass of 16 images takes here."),
        code("zoo = {\n"
             "    'LeNet5(10)': lambda: LeNet5(10),\n"
             "    'Autoencoder(32, 784)': lambda: Autoencoder(32, 784),\n"
             "    'ResNet20(10)': lambda: ResNet20(10),\n"
             "    \"ResNet20(10, 'A')\": lambda: ResNet20(10, 'A'),\n"
             "    'ResNet_CIFAR(56, 10)': lambda: ResNet_CIFAR(56, 10),\n"
             "    'VggForCifar10(10)': lambda: VggForCifar10(10),\n"
             "    'ResNet18(1000)': lambda: ResNet18(1000),\n"
             "}\n"
             "inputs = {'LeNet5(10)': (16, 1, 28, 28), 'Autoencoder(32, 784)': (16, 784),\n"
             "          'ResNet18(1000)': (16, 3, 64, 64)}\n"
             "rows = []\n"
             "for name, build in zoo.items():\n"
             "    model = build().evaluate()\n"
             "    x = np.random.default_rng(1).random(inputs.get(name, (16, 3, 32, 32)), dtype=np.float32)\n"
             "    start = time.perf_counter()\n"
             "    out = model.forward(x)\n"
             "    rows.append((name, int(model.get_parameters()[0].size), x.shape[1:], out.shape[1:],\n"
             "                 round(time.perf_counter() - start, 3)))\n"
             "table = pd.DataFrame(rows, columns=['builder', 'parameters', 'input (per image)',\n"
             "                                   'output', 'forward of 16 (s)']).set_index('builder')\n"
             "params = table['parameters']\n"
             "assert params['ResNet20(10)'] == 272_474 and params[\"ResNet20(10, 'A')\"] == 269_722\n"
             "assert params['ResNet18(1000)'] == 11_689_512\n"
             "assert params['Autoencoder(32, 784)'] == 784 * 32 + 32 + 32 * 784 + 784\n"
             "assert 14_000_000 < params['VggForCifar10(10)'] < 16_000_000\n"
             "table"),
        md("## Training ResNet-20\n"
           "BigDL's local `Optimizer`: 3 epochs of mini-batches of 32 (48 iterations), SGD with "
           "momentum and a little weight decay. The learning rate decays linearly to zero "
           "(`Poly(1.0, 48)`). In a run this short that matters: batch normalization predicts "
           "with running averages of the batch statistics, and while the weights still move "
           "fast those averages lag behind them; letting the rate fall lets both settle. A "
           "`TrainSummary` records the loss of every iteration."),
        code("resnet = ResNet20(class_num=10)\n"
             "summary = TrainSummary(tempfile.mkdtemp(prefix='zoo-'), 'resnet20')\n"
             "sgd = SGD(learningrate=0.05, momentum=0.9, dampening=0.0, weightdecay=1e-4,\n"
             "          learningrate_schedule=Poly(1.0, 48))\n"
             "optimizer = Optimizer(resnet, (C_train, y_train), ClassNLLCriterion(), MaxEpoch(3), 32, sgd,\n"
             "                      seed=7, progress=False)\n"
             "optimizer.set_train_summary(summary)\n"
             "start = time.perf_counter()\n"
             "resnet = optimizer.optimize()\n"
             "print(f'{optimizer.state.iteration} iterations in {time.perf_counter() - start:.1f} s')\n"
             "loss = summary.read_scalar('Loss')\n"
             "plt.figure(figsize=(5, 2.5)); plt.plot(loss[:, 0], loss[:, 1])\n"
             "plt.xlabel('iteration'); plt.title('ResNet-20 training loss')\n"
             "assert optimizer.state.iteration == 48\n"
             "assert loss[-8:, 1].mean() < loss[:8, 1].mean(), 'the loss did not go down'"),
        md("## How well does it classify?\n"
           "`evaluate` puts the model in inference mode (running batch-norm statistics). "
           "Chance is 10%; after 48 iterations ResNet-20 gets most of the held-out coloured "
           "digits right (the test asserts at least 40%, a wide margin below what it measures, "
           "so the tutorial never fails by bad luck). The pictures show test images with the "
           "predicted class, red where it is wrong."),
        code("resnet_accuracy = resnet.evaluate((C_test, y_test), 100, [Top1Accuracy()])[0].value\n"
             "predicted = resnet.predict_class(C_test[:20])\n"
             "print(f'ResNet-20 test accuracy {resnet_accuracy:.3f} (chance 0.1)')\n"
             "fig, axes = plt.subplots(2, 10, figsize=(10, 2.6))\n"
             "for ax, img, p, t in zip(axes.ravel(), images_test, predicted, y_test):\n"
             "    ax.imshow(img.transpose(1, 2, 0)); ax.axis('off')\n"
             "    ax.set_title(int(p), color='black' if p == t else 'red')\n"
             "assert resnet_accuracy >= 0.4, f'ResNet-20 test accuracy {resnet_accuracy:.3f} < 0.4'"),
        md("## VGG for CIFAR, briefly\n"
           "`VggForCifar10` is BigDL's 13-convolution VGG with batch normalization: about 55 "
           "times the parameters of ResNet-20 and many times its computation, too heavy to "
           "train in a tutorial on one core. We take only three SGD steps on one batch of 16 of "
           "the same images (dropout off, `has_dropout=False`, so the loss is not noisy) and "
           "check that the loss on that batch goes down."),
        code("vgg = VggForCifar10(class_num=10, has_dropout=False)\n"
             "batch, labels = C_train[:16], y_train[:16]\n"
             "criterion = ClassNLLCriterion()\n"
             "vgg.training()\n"
             "before = float(criterion.forward(vgg.forward(batch), labels))\n"
             "vgg_optimizer = Optimizer(vgg, (batch, labels), ClassNLLCriterion(), MaxIteration(3), 16,\n"
             "                          SGD(learningrate=0.01, momentum=0.9, dampening=0.0), seed=7,\n"
             "                          progress=False)\n"
             "start = time.perf_counter()\n"
             "vgg = vgg_optimizer.optimize()\n"
             "seconds = time.perf_counter() - start\n"
             "vgg.training()\n"
             "after = float(criterion.forward(vgg.forward(batch), labels))\n"
             "print(f'VGG: loss on the batch {before:.3f} -> {after:.3f} after 3 steps ({seconds:.1f} s)')\n"
             "assert after < before, (before, after)"),
        md("## The autoencoder: digits in, digits out\n"
           "BigDL's MNIST autoencoder: `Linear(784, 32)` + ReLU encodes a 28×28 image into 32 "
           "numbers, `Linear(32, 784)` + sigmoid decodes them. `Autoencoder(class_num, "
           "feature_size)` takes BigDL's arguments; `feature_size=784` matches the 28×28 "
           "digits, which it flattens itself. It trains on all 1,437 training digits with "
           "pixels in [0, 1] (not standardized: the sigmoid output lives in (0, 1)), the "
           "target being the flattened image itself, with `MSECriterion`."),
        code("(D_train, _), (D_test, _) = load_digits(size=28, normalize=False)\n"
             "T_train, T_test = D_train.reshape(len(D_train), -1), D_test.reshape(len(D_test), -1)\n"
             "autoencoder = Autoencoder(class_num=32, feature_size=784)\n"
             "mse = MSECriterion()\n"
             "initial_mse = float(mse.forward(autoencoder.evaluate().forward(D_test), T_test))\n"
             "ae_optimizer = Optimizer(autoencoder, (D_train, T_train), MSECriterion(), MaxEpoch(10), 32,\n"
             "                         Adam(learningrate=0.005), seed=7, progress=False)\n"
             "autoencoder = ae_optimizer.optimize()\n"
             "reconstructions = autoencoder.evaluate().forward(D_test)\n"
             "final_mse = float(mse.forward(reconstructions, T_test))\n"
             "print(f'test reconstruction MSE {initial_mse:.4f} before training, {final_mse:.4f} after')"),
        md("Originals (top) and their reconstructions from 32 numbers each (bottom), test "
           "digits the autoencoder never saw:"),
        code("fig, axes = plt.subplots(2, 10, figsize=(10, 2.2))\n"
             "for i in range(10):\n"
             "    axes[0, i].imshow(D_test[i, 0], cmap='gray', vmin=0, vmax=1)\n"
             "    axes[1, i].imshow(reconstructions[i].reshape(28, 28), cmap='gray', vmin=0, vmax=1)\n"
             "for ax in axes.ravel():\n"
             "    ax.axis('off')\n"
             "axes[0, 0].set_title('original', loc='left'); axes[1, 0].set_title('reconstruction', loc='left')\n"
             "assert reconstructions.shape == (len(D_test), 784)\n"
             "assert final_mse < 0.1 * initial_mse, (initial_mse, final_mse)"),
        md("## The result\n"
           "The tutorial checks itself: the zoo's parameter counts are the published ones, "
           "ResNet-20 classifies the held-out coloured digits far above chance after three "
           "short epochs, VGG's loss falls in a few steps, and the autoencoder's test "
           "reconstruction error drops below a tenth of the untrained one."),
        code("print(f'ResNet-20 accuracy {resnet_accuracy:.3f}, VGG loss {before:.3f} -> {after:.3f}, '\n"
             "      f'autoencoder MSE {initial_mse:.4f} -> {final_mse:.4f}')\n"
             "assert resnet_accuracy >= 0.4\n"
             "assert after < before\n"
             "assert final_mse < 0.1 * initial_mse"),
    ]


def import_finetune_notebook():
    """Tutorial 08: a PyTorch model in (ONNX and state_dict), checked equal, fine-tuned on Spark."""
    return [
        md("# Import a model from another framework and fine-tune it on Spark\n\n"
           "A model trained elsewhere comes into workbench two ways, both read without running "
           "anything from the file: an **ONNX** file becomes a workbench model "
           "(`workbench.io.load_onnx`), and a PyTorch **`state_dict`** saved with `torch.save` "
           "fills the weights of a workbench model built to match "
           "(`workbench.io.load_pytorch_weights`, no torch and no unpickling needed). We check "
           "both against the original, then fine-tune on Spark: the convolutional feature "
           "extractor frozen, a new classifier head trained for a different task.\n\n"
           "PyTorch is only the *other framework* here, the one the model comes from; workbench "
           "itself never imports torch. The model is tiny so the whole tutorial runs in a couple "
           "of minutes on one core."),
        code("import collections, os, tempfile\n"
             "import numpy as np\n"
             "os.environ.setdefault('SPARK_LOCAL_IP', '127.0.0.1')\n"
             "import torch\n"
             "from torch import nn\n"
             "from workbench.data import load_digits\n"
             "from workbench.io import load_onnx, load_pytorch_weights\n"
             "from workbench.models import torchvision_names\n"
             "from workbench.nn import (ClassNLLCriterion, Linear, LogSoftMax, Model, ReLU, Reshape,\n"
             "                          Sequential, SpatialConvolution, SpatialMaxPooling, random)\n"
             "from workbench.optim import Adam, MaxEpoch, Optimizer\n"
             "from workbench.spark import get_spark\n"
             "torch.manual_seed(0)\n"
             "torch.set_num_threads(1)\n"
             "random.set_seed(42)\n"
             "workdir = tempfile.mkdtemp(prefix='tutorial-08-')"),
        md("## The data and the original task\nThe 8×8 handwritten digits bundled with workbench "
           "(`load_digits(size=8)`: a fixed stratified split, standardized, shape `(N, 1, 8, 8)`, "
           "labels 0–9). The original model only ever sees the digits **0–4**; the fine-tuned one "
           "will classify all ten."),
        code("(X_train, y_train), (X_test, y_test) = load_digits(size=8)\n"
             "old_train, old_test = y_train < 5, y_test < 5\n"
             "print(X_train.shape, X_test.shape, '-', old_train.sum(), 'training and',\n"
             "      old_test.sum(), 'test images of the digits 0-4')"),
        md("## 1. Train a small CNN in PyTorch\nTwo convolution + pooling stages (the feature "
           "extractor) and two fully connected layers, log-probabilities out. The module names "
           "(`conv1`, `fc2`, ...) become the `state_dict` keys (`conv1.weight`, ...)."),
        code("def torch_net(classes):\n"
             "    return nn.Sequential(collections.OrderedDict([\n"
             "        ('conv1', nn.Conv2d(1, 16, 3, padding=1)), ('relu1', nn.ReLU()), ('pool1', nn.MaxPool2d(2)),\n"
             "        ('conv2', nn.Conv2d(16, 32, 3, padding=1)), ('relu2', nn.ReLU()), ('pool2', nn.MaxPool2d(2)),\n"
             "        ('flatten', nn.Flatten()),\n"
             "        ('fc1', nn.Linear(32 * 2 * 2, 64)), ('relu3', nn.ReLU()),\n"
             "        ('fc2', nn.Linear(64, classes)), ('log_softmax', nn.LogSoftmax(dim=1))]))\n\n"
             "net = torch_net(5)\n"
             "xs, ys = torch.from_numpy(X_train[old_train]), torch.from_numpy(y_train[old_train])\n"
             "adam = torch.optim.Adam(net.parameters(), lr=0.01)\n"
             "order = torch.Generator().manual_seed(0)\n"
             "for epoch in range(5):\n"
             "    for batch in torch.randperm(len(xs), generator=order).split(32):\n"
             "        adam.zero_grad()\n"
             "        loss = nn.functional.nll_loss(net(xs[batch]), ys[batch])\n"
             "        loss.backward()\n"
             "        adam.step()\n"
             "net.eval()\n"
             "with torch.no_grad():\n"
             "    torch_out = net(torch.from_numpy(X_test[old_test])).numpy()\n"
             "torch_accuracy = (torch_out.argmax(1) == y_test[old_test]).mean()\n"
             "print(f'PyTorch, digits 0-4: test accuracy {torch_accuracy:.4f}')\n"
             "assert torch_accuracy >= 0.95, torch_accuracy"),
        md("## 2. Export: a `state_dict` and an ONNX file\n`torch.save(net.state_dict())` writes "
           "the weights (a zip of a small pickle and raw tensor bytes). `torch.onnx.export` "
           "writes the whole graph, here with a dynamic batch dimension; the TorchScript-based "
           "exporter (`dynamo=False`) without constant folding keeps the graph as the layers "
           "were written."),
        code("pt_path = os.path.join(workdir, 'digits04.pt')\n"
             "onnx_path = os.path.join(workdir, 'digits04.onnx')\n"
             "torch.save(net.state_dict(), pt_path)\n"
             "torch.onnx.export(net, torch.zeros(1, 1, 8, 8), onnx_path, input_names=['image'],\n"
             "                  output_names=['log_probs'],\n"
             "                  dynamic_axes={'image': {0: 'batch'}, 'log_probs': {0: 'batch'}},\n"
             "                  dynamo=False, do_constant_folding=False)\n"
             "print(sorted(net.state_dict()))\n"
             "print(os.path.getsize(pt_path), 'and', os.path.getsize(onnx_path), 'bytes')"),
        md("## 3a. Import the ONNX file\n`load_onnx` parses the protobuf and maps each node to a "
           "workbench layer (an unsupported op is an error naming it); it returns the model in "
           "inference mode."),
        code("imported = load_onnx(onnx_path)\n"
             "print(imported)"),
        md("## 3b. Load the `state_dict` into the same architecture built in workbench\nBigDL's "
           "layers, named as the torch modules. `torchvision_names(model)` is the map "
           "`{state_dict key: (layer name, parameter)}` read from those names; "
           "`load_pytorch_weights` reads the `.pt` file with a restricted unpickler (only the "
           "globals a `state_dict` needs, nothing is called), checks every shape and fails on "
           "any missing or unexpected key."),
        code("def build(classes):\n"
             "    return (Sequential()\n"
             "            .add(SpatialConvolution(1, 16, 3, 3, 1, 1, 1, 1).set_name('conv1')).add(ReLU())\n"
             "            .add(SpatialMaxPooling(2, 2, 2, 2))\n"
             "            .add(SpatialConvolution(16, 32, 3, 3, 1, 1, 1, 1).set_name('conv2')).add(ReLU())\n"
             "            .add(SpatialMaxPooling(2, 2, 2, 2).set_name('pool2'))\n"
             "            .add(Reshape([32 * 2 * 2]))\n"
             "            .add(Linear(32 * 2 * 2, 64).set_name('fc1')).add(ReLU())\n"
             "            .add(Linear(64, classes).set_name('fc2')).add(LogSoftMax()))\n\n"
             "model = build(5)\n"
             "name_map = torchvision_names(model)\n"
             "print(name_map)\n"
             "load_pytorch_weights(model, pt_path, name_map)\n"
             "model.evaluate()"),
        md("## Checked equal\nBoth imports give PyTorch's log-probabilities to float rounding, "
           "hence the same predictions and the same test accuracy."),
        code("for how, m in [('ONNX', imported), ('state_dict', model)]:\n"
             "    out = m.forward(X_test[old_test])\n"
             "    accuracy = (out.argmax(1) == y_test[old_test]).mean()\n"
             "    print(f'{how:>10}: largest difference {np.abs(out - torch_out).max():.1e}, '\n"
             "          f'test accuracy {accuracy:.4f}')\n"
             "    np.testing.assert_allclose(out, torch_out, rtol=1e-4, atol=1e-4)\n"
             "    assert np.array_equal(out.argmax(1), torch_out.argmax(1))\n"
             "    assert accuracy == torch_accuracy"),
        md("## 4. Fine-tune on Spark with the feature extractor frozen\nThe new task: all ten "
           "digits. `freeze_up_to('pool2')` freezes every layer from the input up to the end of "
           "the convolutional stages (their parameters get no gradient, are left out of the "
           "optimizer's state and of the all-reduce between Spark tasks); `replace('fc2', ...)` "
           "puts a fresh 10-way head where the 5-way one was. `fc1` and the new head train.\n\n"
           "The training set is a DataFrame (a `features` column of 64 floats, a `label` "
           "column); `feature_shape=(1, 8, 8)` gives each record the image shape the "
           "convolutions expect. Spark runs in this process with two task slots (`local[2]`)."),
        code("spark = get_spark('local[2]', app_name='tutorial-08')\n"
             "spark.sparkContext.setLogLevel('ERROR')\n"
             "schema = 'features array<float>, label long'\n"
             "rows = [(x.ravel().tolist(), int(t)) for x, t in zip(X_train, y_train)]\n"
             "train_df = spark.createDataFrame(rows, schema).cache()\n"
             "print(train_df.count(), 'training rows of all ten digits in',\n"
             "      train_df.rdd.getNumPartitions(), 'partitions')"),
        code("model.freeze_up_to('pool2')\n"
             "model.replace('fc2', Linear(64, 10))\n"
             "frozen = {name: [np.array(getattr(layer, p), copy=True) for p in ('weight', 'bias')]\n"
             "          for layer in model.modules() for name in [layer.name()] if name in ('conv1', 'conv2')}\n"
             "fc1_before = np.array(next(m for m in model.modules() if m.name() == 'fc1').weight, copy=True)\n"
             "print(model.get_parameters()[0].size, 'trainable parameters of', build(10).get_parameters()[0].size)\n"
             "optimizer = Optimizer(model, train_df, ClassNLLCriterion(), MaxEpoch(3), 32, Adam(0.01),\n"
             "                      seed=7, progress=False, feature_shape=(1, 8, 8))\n"
             "tuned = optimizer.optimize()\n"
             "tuned.evaluate()"),
        md("## The result\nThe frozen convolutions are bit-for-bit what PyTorch trained; `fc1` "
           "moved; the fine-tuned model classifies all ten digits well although its features "
           "were learned on five."),
        code("layers = {m.name(): m for m in tuned.modules()}\n"
             "for name, (weight, bias) in frozen.items():\n"
             "    assert layers[name].weight.tobytes() == weight.tobytes(), name\n"
             "    assert layers[name].bias.tobytes() == bias.tobytes(), name\n"
             "assert np.array_equal(layers['conv1'].weight, net.conv1.weight.detach().numpy())\n"
             "assert not np.array_equal(layers['fc1'].weight, fc1_before)\n"
             "assert layers['fc2'].weight.shape == (10, 64)\n"
             "predicted = tuned.forward(X_test).argmax(1)\n"
             "accuracy = (predicted == y_test).mean()\n"
             "print(f'fine-tuned, all ten digits: test accuracy {accuracy:.4f} '\n"
             "      f'(digits 5-9 alone: {(predicted == y_test)[~old_test].mean():.4f})')\n"
             "assert accuracy >= 0.88, f'test accuracy {accuracy:.4f} is below 0.88'"),
        md("## 5. Save and reload\nBigDL's `saveModel` writes the project's safe format (JSON "
           "architecture + an `.npz` of weights in one zip, never a pickle); `Model.loadModel` "
           "reads it back, and the reloaded model predicts exactly the same."),
        code("path = os.path.join(workdir, 'digits-finetuned.bigdl')\n"
             "tuned.saveModel(path, over_write=True)\n"
             "reloaded = Model.loadModel(path)\n"
             "reloaded.evaluate()\n"
             "assert np.array_equal(reloaded.forward(X_test), tuned.forward(X_test))\n"
             "print(len(X_test), 'equal predictions from', os.path.basename(path))"),
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
    write("04_shakespeare_rnn.ipynb", shakespeare_rnn_notebook())
    write("03_distributed_training.ipynb", distributed_notebook())
    write("05_hyperparameter_tuning.ipynb", tuning_notebook())
    write("09_model_zoo.ipynb", model_zoo_notebook())
    write("08_import_and_fine_tune.ipynb", import_finetune_notebook())
