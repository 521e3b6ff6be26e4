SELECT typeof(1), typeof(1.0), typeof('a'), typeof(NULL), typeof(x'00'), typeof(1 + 1.0), typeof('1' + 1);
