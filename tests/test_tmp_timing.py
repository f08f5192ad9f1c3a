import time
from test_spark_faults import *
def test_timing(digits):
    class T(Listener):
        def on_start(self, o): self.t0=time.time(); self.ts=[]
        def on_iteration(self, e): self.ts.append((e.iteration, round(time.time()-self.t0,2)))
    t=T()
    t0=time.time()
    model, opt, rec = train(digits[0], listener=None)
    print("A", time.time()-t0)
    t0=time.time()
    random.set_seed(21)
    model = models.LeNet5(10)
    opt = Optimizer(model, digits[0], ClassNLLCriterion(), MaxEpoch(2), 64, SGD(0.05), seed=5, progress=False, max_stretch_iterations=STRETCH)
    opt.add_listener(t); opt.optimize()
    print("B", time.time()-t0, t.ts)
