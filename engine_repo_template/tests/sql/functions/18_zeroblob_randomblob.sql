SELECT length(zeroblob(10)), typeof(randomblob(4)), length(randomblob(8)), hex(zeroblob(3));
