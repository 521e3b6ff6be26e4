SELECT typeof(1), typeof('1'), typeof(1.0), typeof(NULL), typeof(x'01');
