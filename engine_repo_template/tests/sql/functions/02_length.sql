SELECT length('hello'), length(''), length(NULL), length(12345), length('héllo'), length(1.5);
