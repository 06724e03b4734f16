def alpha(x):
    return x + 1
