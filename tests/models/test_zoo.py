"""The model zoo: output shapes, parameter counts against torchvision's, and forward parity with
torch modules written here in torchvision's structure and state_dict names (torchvision itself
is not installed), their weights copied in through ``torchvision_names``."""
import numpy as np
import pytest
from oracle import torch

from workbench import models
from workbench.nn import ClassNLLCriterion, SpatialConvolution, backend
from workbench.nn.module import input_grad_unused

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One native thread: on the shared 2-core machine two oneDNN threads contend with the other
    processes and ran these forwards up to 10x slower under pytest."""
    previous = backend.set_num_threads(1)
    yield
    backend.set_num_threads(previous)


@pytest.fixture(scope="module")
def vgg16():
    """Our VGG-16 with 10 classes, built once (138M-parameter initialization is slow)."""
    return models.VGG16(10)


def count(model):
    return sum(getattr(m, n).size for _, m, n in model.named_parameters())


# ---------------------------------------------------------------------- shapes
@pytest.mark.parametrize("build, x, shape", [
    (lambda: models.ResNet20(10), RNG.random((2, 3, 32, 32), np.float32), (2, 10)),
    (lambda: models.ResNet32(7, shortcut_type="A"), RNG.random((2, 3, 32, 32), np.float32),
     (2, 7)),
    (lambda: models.ResNet56(10), RNG.random((1, 3, 32, 32), np.float32), (1, 10)),
    (lambda: models.VggForCifar10(10), RNG.random((2, 3, 32, 32), np.float32), (2, 10)),
    (lambda: models.ResNet18(5), RNG.random((1, 3, 64, 64), np.float32), (1, 5)),
    (lambda: models.ResNet50(5), RNG.random((1, 3, 64, 64), np.float32), (1, 5)),
    (lambda: models.GoogLeNet(6), RNG.random((2, 3, 64, 64), np.float32), (2, 6)),
    (lambda: models.Inception_v2(8), RNG.random((1, 3, 224, 224), np.float32), (1, 8)),
    (lambda: models.Autoencoder(16, 100), RNG.random((3, 1, 10, 10), np.float32), (3, 100)),
    (lambda: models.TextCNN(50, 16, 12, 4), RNG.integers(0, 50, (3, 12)), (3, 4)),
    (lambda: models.ResNet(10, {"depth": 20, "dataSet": "cifar10"}),
     RNG.random((1, 3, 32, 32), np.float32), (1, 10)),
], ids=["resnet20", "resnet32A", "resnet56", "vgg_cifar", "resnet18", "resnet50", "googlenet",
        "inception_v2", "autoencoder", "textcnn", "bigdl_resnet"])
def test_output_shape(build, x, shape):
    model = build()
    model.evaluate()
    y = model.forward(x)
    assert y.shape == shape
    assert np.isfinite(y).all()


def test_log_probability_outputs_and_autoencoder_range():
    for model, x in ((models.ResNet20(10), RNG.random((2, 3, 32, 32), np.float32)),
                     (models.TextCNN(30, 8, 10, 3, kernel_sizes=(2, 3)),
                      RNG.integers(0, 30, (2, 10)))):
        model.evaluate()
        np.testing.assert_allclose(np.exp(model.forward(x)).sum(axis=1), 1.0, rtol=1e-5)
    y = models.Autoencoder().forward(RNG.random((4, 784), np.float32))
    assert y.shape == (4, 784) and (y > 0).all() and (y < 1).all()


def test_small_parameter_counts():
    assert count(models.Autoencoder()) == 784 * 32 + 32 + 32 * 784 + 784
    # embedding + 3 convolutions (k * 16 * 100 + 100 each) + linear
    assert count(models.TextCNN(50, 16, 12, 4)) == 50 * 16 + sum(
        k * 16 * 100 + 100 for k in (3, 4, 5)) + 300 * 4 + 4
    assert count(models.ResNet20()) == 272474  # option B (1x1 projections)
    assert count(models.ResNet20(shortcut_type="A")) == 269722  # the paper's 0.27M


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="ResNet_CIFAR: depth must be 6n"):
        models.ResNet_CIFAR(21)
    with pytest.raises(ValueError, match="shortcut_type"):
        models.ResNet20(shortcut_type="C")
    with pytest.raises(ValueError, match="VGG16: input_size"):
        models.VGG16(input_size=100)
    with pytest.raises(ValueError, match="TextCNN: kernel_sizes"):
        models.TextCNN(50, 16, 4, 2)
    with pytest.raises(ValueError, match="GoogLeNet: num_classes"):
        models.GoogLeNet(1)
    with pytest.raises(ValueError, match="ResNet: ImageNet depth"):
        models.ResNet(10, {"depth": 34, "dataSet": "imagenet"})


def test_names_map_format_and_unnamed_layers():
    names = models.torchvision_names(models.ResNet18(10))
    assert names["layer2.0.downsample.0.weight"] == ("layer2.0.downsample.0", "weight")
    assert names["layer4.1.bn2.running_var"] == ("layer4.1.bn2", "running_var")
    assert names["fc.bias"] == ("fc", "bias")
    assert not any(k.endswith("num_batches_tracked") for k in names)
    from workbench.nn import Sequential
    with pytest.raises(ValueError, match="SpatialConvolution.*no name"):
        models.torchvision_names(Sequential().add(SpatialConvolution(1, 2, 3, 3)))


def test_resnet20_trains():
    """A few SGD steps on one batch lower the loss (training mode, batch norm included)."""
    from workbench.optim import SGD
    model = models.ResNet20(10)
    model.training()
    crit = ClassNLLCriterion()
    x = RNG.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = RNG.integers(0, 10, 8)
    w, g = model.get_parameters()
    method = SGD(learningrate=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        out = model.forward(x)
        losses.append(float(crit.forward(out, y)))
        g.fill(0)
        with input_grad_unused():  # as the training loop: no gradient w.r.t. the data
            model.backward(x, crit.backward(out, y))
        method.update(w, g)
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses


# ---------------------------------------------------------------------- torchvision mirrors
def torch_resnet(block, counts, num_classes=1000):
    nn = torch.nn

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, n_in, planes, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(n_in, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, n_in, planes, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(n_in, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    cls = BasicBlock if block == "basic" else Bottleneck

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            n_in = 64
            for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts), 1):
                blocks = []
                for j in range(n):
                    stride = 2 if i > 1 and j == 0 else 1
                    down = None
                    if stride != 1 or n_in != planes * cls.expansion:
                        down = nn.Sequential(
                            nn.Conv2d(n_in, planes * cls.expansion, 1, stride, bias=False),
                            nn.BatchNorm2d(planes * cls.expansion))
                    blocks.append(cls(n_in, planes, stride, down))
                    n_in = planes * cls.expansion
                setattr(self, f"layer{i}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(n_in, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def torch_vgg(depth, num_classes=1000):
    nn = torch.nn
    cfg = {16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M"],
           19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M"]}[depth]

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            layers, n_in = [], 3
            for v in cfg:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                else:
                    layers += [nn.Conv2d(n_in, v, 3, padding=1), nn.ReLU(inplace=True)]
                    n_in = v
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(0.5),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5),
                nn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return VGG()


def torch_googlenet(num_classes=1000, transform_input=False):
    nn = torch.nn

    class BasicConv2d(nn.Module):
        def __init__(self, n_in, n_out, **kwargs):
            super().__init__()
            self.conv = nn.Conv2d(n_in, n_out, bias=False, **kwargs)
            self.bn = nn.BatchNorm2d(n_out, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class Inception(nn.Module):
        def __init__(self, n_in, c1, c3r, c3, c5r, c5, pool):
            super().__init__()
            self.branch1 = BasicConv2d(n_in, c1, kernel_size=1)
            self.branch2 = nn.Sequential(BasicConv2d(n_in, c3r, kernel_size=1),
                                         BasicConv2d(c3r, c3, kernel_size=3, padding=1))
            self.branch3 = nn.Sequential(BasicConv2d(n_in, c5r, kernel_size=1),
                                         BasicConv2d(c5r, c5, kernel_size=3, padding=1))
            self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                         BasicConv2d(n_in, pool, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                              self.branch4(x)], 1)

    class GoogLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.conv2 = BasicConv2d(64, 64, kernel_size=1)
            self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
            self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
            self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
            self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
            self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
            self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
            self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
            self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
            self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.dropout = nn.Dropout(0.2)
            self.fc = nn.Linear(1024, num_classes)

        def forward(self, x):
            if transform_input:
                x = torch.cat([x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                               x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                               x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5], 1)
            x = self.maxpool1(self.conv1(x))
            x = self.maxpool2(self.conv3(self.conv2(x)))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            for name in ("inception4a", "inception4b", "inception4c", "inception4d",
                         "inception4e"):
                x = getattr(self, name)(x)
            x = self.inception5b(self.inception5a(self.maxpool4(x)))
            return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    return GoogLeNet()


def torch_count(build):
    with torch.device("meta"):
        return sum(p.numel() for p in build().parameters())


def copy_weights(torch_model, model):
    """The importer's job in a few lines: every torch state_dict entry into our layer."""
    names = models.torchvision_names(model)
    state = {k: v for k, v in torch_model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    assert set(state) == set(names)  # the names cover each other exactly
    layers = {m.name(): m for m in model.modules()}
    for key, value in state.items():
        layer, attr = names[key]
        target = getattr(layers[layer], attr)
        assert target.shape == tuple(value.shape), key
        target[...] = value.detach().numpy()


def randomize_batch_norm(torch_model, seed=0):
    """Eval-mode batch norm with non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in torch_model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)


def assert_parity(torch_model, model, x):
    torch_model.eval()
    randomize_batch_norm(torch_model)
    copy_weights(torch_model, model)
    model.evaluate()
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    got = model.forward(x)
    assert got.shape == expected.shape
    scale = np.abs(expected).max()
    assert scale > 0
    assert np.abs(got - expected).max() <= 1e-4 * scale, np.abs(got - expected).max() / scale


@pytest.mark.oracle
def test_parameter_counts_equal_torchvision(vgg16):
    expected = {"resnet18": 11_689_512, "resnet50": 25_557_032, "vgg16": 138_357_544,
                "vgg19": 143_667_240, "googlenet": 6_624_904}
    mirrors = {"resnet18": lambda: torch_resnet("basic", (2, 2, 2, 2)),
               "resnet50": lambda: torch_resnet("bottleneck", (3, 4, 6, 3)),
               "vgg16": lambda: torch_vgg(16), "vgg19": lambda: torch_vgg(19),
               "googlenet": torch_googlenet}
    ours = {"resnet18": models.ResNet18, "resnet50": models.ResNet50,
            "vgg19": models.VGG19, "googlenet": models.GoogLeNet}
    for name, n in expected.items():
        assert torch_count(mirrors[name]) == n, name
        if name != "vgg16":
            assert count(ours[name]()) == n, name
    # 10 classes: 4096 * (1000 - 10) weights and 990 biases fewer
    assert count(vgg16) == expected["vgg16"] - 4097 * 990


@pytest.mark.oracle
def test_resnet18_parity():
    torch.manual_seed(0)
    assert_parity(torch_resnet("basic", (2, 2, 2, 2), 10), models.ResNet18(10),
                  RNG.standard_normal((1, 3, 64, 64)).astype(np.float32))


@pytest.mark.oracle
def test_resnet50_parity():
    torch.manual_seed(1)
    assert_parity(torch_resnet("bottleneck", (3, 4, 6, 3), 10), models.ResNet50(10),
                  RNG.standard_normal((1, 3, 64, 64)).astype(np.float32))


@pytest.mark.oracle
def test_vgg16_parity(vgg16):
    torch.manual_seed(2)
    with torch.device("meta"):  # skips torch's slow initialization of 138M weights
        mirror = torch_vgg(16, 10)
    mirror = mirror.to_empty(device="cpu")
    with torch.no_grad():
        for p in mirror.parameters():
            bound = 1.0 / np.sqrt(p[0].numel() if p.dim() > 1 else p.numel())
            p.uniform_(-bound, bound)
    assert_parity(mirror, vgg16,
                  RNG.standard_normal((1, 3, 224, 224)).astype(np.float32))


@pytest.mark.oracle
@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_parity(transform_input):
    """80x80 input: every ceil-mode max-pooling has a partial last window."""
    torch.manual_seed(3)
    assert_parity(torch_googlenet(10, transform_input),
                  models.GoogLeNet(10, transform_input=transform_input),
                  RNG.standard_normal((1, 3, 80, 80)).astype(np.float32))


@pytest.mark.parametrize("build, x", [
    (lambda: models.ResNet20(10, shortcut_type="A"), RNG.random((2, 3, 32, 32), np.float32)),
    (lambda: models.GoogLeNet(5, transform_input=True), RNG.random((1, 3, 48, 48), np.float32)),
    (lambda: models.TextCNN(40, 8, 9, 3), RNG.integers(0, 40, (2, 9))),
], ids=["resnet20A", "googlenet", "textcnn"])
def test_saved_and_loaded_with_names(tmp_path, build, x):
    """The safe model format keeps the structure, weights and the layer names the map uses."""
    from workbench.io import load_model, save_model
    model = build()
    model.evaluate()
    path = str(tmp_path / "model")
    save_model(model, path)
    loaded = load_model(path)
    loaded.evaluate()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert models.torchvision_names(loaded) == models.torchvision_names(model)


def test_textcnn_starts_from_pretrained_word_vectors_and_keeps_the_padding_row():
    vectors = np.random.default_rng(3).standard_normal((20, 6)).astype(np.float32)
    vectors[0] = 0.0  # the padding id's row
    model = models.TextCNN(20, 6, 8, 3, kernel_sizes=(2, 3), num_filters=4,
                           embedding_weights=vectors, padding_value=0)
    np.testing.assert_array_equal(model.get_weights()[0], vectors)
    x = np.array([[3, 5, 7, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0]])
    y = np.array([0, 2])
    crit = ClassNLLCriterion()
    w, g = model.get_parameters()
    g.fill(0)
    with input_grad_unused():
        model.backward(x, crit.backward(model.forward(x), y))
    grad = model[0].grad_weight
    # ids that are absent get no gradient, nor does the padding id (which is everywhere)
    assert grad.any() and not grad[0].any() and not grad[[4, 6, 8, 19]].any()
    with pytest.raises(ValueError, match=r"TextCNN: embedding_weights must be numbers of shape "
                                         r"\(vocab_size, embedding_dim\) = \(20, 6\)"):
        models.TextCNN(20, 6, 8, 3, embedding_weights=vectors[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        models.TextCNN(20, 6, 8, 3, embedding_weights=np.full((20, 6), np.nan))
